"""Loaders of real audio datasets from local files; each returns an ``AudioDataset``.

Nothing here downloads: every loader reads the published on-disk layout under ``root`` and,
when something is missing, says which files go where and where the data is published.

- ``nsynth.load_nsynth``: NSynth-100/200/300/400 few-shot CIL splits
- ``ls100.load_ls100``: LS-100 (LibriSpeech speakers); ``python -m
  audiocil.data.loaders.ls100 build`` makes the segments
- ``fsc89.load_fsc89``: FSC-89 (FSD-MIX-SED / FSD-MIX-CLIPS)
- ``esc50.load_esc50``: ESC-50 (or ESC-10)
- ``urbansound8k.load_urbansound8k``: UrbanSound8K
- ``speechcommands.load_speechcommands``: Speech Commands v2
- ``audioset_strong.load_audioset_strong``: AudioSet with strong labels (multi-label)
- ``fsd50k.load_fsd50k``: FSD50K (multi-label)
- ``folder.load_folder``: your own ``root/<class_name>/*.wav``
"""
