"""CIL methods: one LightningModule strategy per module, configured by conf/method/<name>.yaml."""
