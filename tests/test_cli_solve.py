"""`edgellm solve` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from edgellm.cli import main


def test_example_then_solve_both_methods(tmp_path, capsys):
    assert main(["solve", "--example", "--n", "7"]) == 0
    path = tmp_path / "inst.json"
    path.write_text(capsys.readouterr().out)
    results = {}
    for method in ("dftsp", "bruteforce"):
        assert main(["solve", str(path), "--method", method]) == 0
        results[method] = json.loads(capsys.readouterr().out)
    assert results["dftsp"]["value"] == results["bruteforce"]["value"] > 0
    assert results["bruteforce"]["nodes"] == 2 ** 7
    assert results["dftsp"]["evaluation"]["feasible"] is True


def test_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "edgellm.slot-instance/1"}))
    proc = subprocess.run([sys.executable, "-m", "edgellm.cli", "solve", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"edgellm: error: {bad}: model: missing key"
    assert "Traceback" not in proc.stderr


def test_solve_file_with_media_and_a_malformed_media_key(tmp_path, capsys):
    import numpy as np

    from edgellm.system.generate import random_instance
    from edgellm.system.media import MediaMix

    inst = random_instance(np.random.default_rng(2), 6, model="llava-1.5-7b",
                           media=MediaMix((0.2, 0.4, 0.4), "llava-1.5-7b"))
    path = tmp_path / "media.json"
    inst.to_json(path)
    assert main(["solve", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"]["feasible"] and out["value"] >= 1
    doc = json.loads(path.read_text())
    doc["requests"][2]["uplink_media_bits"] = -8.0
    path.write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "edgellm.cli", "solve", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"edgellm: error: {path}: requests[2].uplink_media_bits: "
                                   "must be a finite number >= 0, got -8.0")
