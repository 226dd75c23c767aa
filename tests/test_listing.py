"""audiocil methods: every conf/method yaml, with a description, its paper and the
scenarios its class declares; a method added later appears by itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from audiocil.config import CONFIG_DIR
from audiocil.listing import main, methods

REPO = Path(__file__).resolve().parents[1]


def test_every_method_is_listed_with_what_it_is(capsys):
    listed = {m.name: m for m in methods()}
    assert set(listed) == {p.stem for p in (CONFIG_DIR / "method").glob("*.yaml")}
    for m in listed.values():
        assert m.summary and m.scenarios, m
    assert listed["icarl"].paper == "Rebuffi et al., CVPR 2017"
    assert listed["icarl"].scenarios == ("standard", "fewshot")
    assert "Mulimani & Mesaros" in listed["iodfd"].paper
    assert listed["iodfd"].scenarios == ("multilabel",)
    assert main(["--scenario", "fewshot"]) == 0
    out = capsys.readouterr().out
    assert "method=meta_sc" in out and "method=der" not in out


def test_a_new_method_appears_by_itself(tmp_path):
    shutil.copytree(CONFIG_DIR, tmp_path / "conf")
    text = (CONFIG_DIR / "method" / "lwf.yaml").read_text().replace("name: lwf", "name: mine")
    (tmp_path / "conf" / "method" / "mine.yaml").write_text(text)
    names = [m.name for m in methods(tmp_path / "conf")]
    assert "mine" in names and "_base" not in names


def test_the_console_word_reaches_the_listing():
    env_path = f"{REPO / 'src'}"
    out = subprocess.run([sys.executable, "-m", "audiocil", "methods", "--markdown"],
                         capture_output=True, text=True, env={"PYTHONPATH": env_path,
                                                               "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("| method | scenarios | paper | what it is |")
