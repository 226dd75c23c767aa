"""Few-shot figures against hand-computed cases, and the record's round trip."""

from __future__ import annotations

import pytest

from audiocil.metrics.fewshot import (
    aggregate_trials,
    harmonic_mean,
    run_figures,
    session_figures,
)
from audiocil.results.fewshot import FewShotRecord
from audiocil.scenarios.fewshot import FewShotTask

# 2 base classes + sessions of 1 way; 10 test clips per class
S0 = session_figures([9, 7], [10, 10], base=2, ways=1, session=0)
S1 = session_figures([8, 6, 5], [10, 10, 10], base=2, ways=1, session=1)
S2 = session_figures([8, 4, 3, 1], [10, 10, 10, 10], base=2, ways=1, session=2)


def test_session_figures_by_hand():
    assert S0["accuracy"] == 80.0 and S0["base_accuracy"] == 80.0
    assert S0["novel_accuracy"] is None and S0["hm"] is None
    assert S1["accuracy"] == pytest.approx(190 / 3)
    assert S1["base_accuracy"] == 70.0 and S1["novel_accuracy"] == 50.0
    assert S1["hm"] == pytest.approx(2 * 70 * 50 / 120)
    assert S2["accuracy_row"] == [60.0, 30.0, 10.0] and S2["current_accuracy"] == 10.0
    assert S2["novel_accuracy"] == 20.0  # (3 + 1) / 20


def test_pooled_over_clips_not_over_classes():
    f = session_figures([10, 0, 1], [10, 30, 10], base=2, ways=1, session=1)
    assert f["base_accuracy"] == 25.0  # 10 / 40, not mean(100, 0)


def test_run_figures_by_hand():
    r = run_figures([S0, S1, S2])
    acc = [80.0, 190 / 3, 40.0]
    assert r["aa"] == pytest.approx(sum(acc) / 3)
    assert r["pd"] == pytest.approx(40.0)
    assert r["ar"] == pytest.approx(100 * (80 - 60) / 80)  # base accuracy 80 -> 60
    assert r["msr"] == pytest.approx(75.0)
    assert r["cpi"] == pytest.approx(0.5 * 75 + 0.5 * (50 + 20) / 2)
    assert r["mean_hm"] == pytest.approx((S1["hm"] + S2["hm"]) / 2)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_aggregate_mean_and_sample_std():
    a = run_figures([S0, S1])
    b = run_figures([S0, session_figures([9, 7, 9], [10, 10, 10], 2, 1, 1)])
    agg = aggregate_trials([a, b])
    assert agg["n_trials"] == 2
    assert agg["pd"] == pytest.approx((a["pd"] + b["pd"]) / 2)
    assert agg["pd_std"] == pytest.approx(abs(a["pd"] - b["pd"]) / 2 ** 0.5)
    assert agg["accuracy_per_session_std"][0] == 0.0
    assert agg["novel_accuracy_per_session"][0] is None


def _step(correct, count, session):
    return {"classifiers": {"cnn": {"correct": correct, "count": count}},
            **({"shots": [1, 2]} if session else {})}


def test_record_trials_share_the_base_session_and_round_trip():
    rec = FewShotRecord({"method": "m", "tasks": [[0, 1], [2], [3], [2], [3]]}, base=2, ways=1,
                        shots=1, sessions=2, trials=2)
    info = {"time_s": 1.0, "params": 10, "memory_samples": 0, "memory_bytes": None}
    rec.add_step(FewShotTask(0, (0, 1), 0, 2, trial=0, session=0), _step([9, 7], [10, 10], 0), info)
    rec.add_step(FewShotTask(1, (2,), 2, 3, trial=0, session=1), _step([8, 6, 5], [10] * 3, 1), info)
    mid = rec.to_json()  # trial 0 is not complete yet: figures of what there is
    assert mid["n_trials"] == 1 and len(mid["accuracy_per_session"]) == 2
    rec.add_step(FewShotTask(2, (3,), 3, 4, trial=0, session=2), _step([8, 4, 3, 1], [10] * 4, 2), info)
    rec.add_step(FewShotTask(3, (2,), 2, 3, trial=1, session=1), _step([9, 7, 9], [10] * 3, 1), info)
    out = rec.to_json()
    assert out["n_trials"] == 1 and out["trials"][1]["complete"] is False
    assert out["pd"] == pytest.approx(40.0) and out["tasks"] == [[0, 1], [2], [3]]
    rec.add_step(FewShotTask(4, (3,), 3, 4, trial=1, session=2), _step([9, 7, 9, 5], [10] * 4, 2), info)
    again = FewShotRecord.from_state(rec.state_dict()).to_json()
    assert again == rec.to_json()
    assert again["n_trials"] == 2 and again["accuracy_per_session"][0] == 80.0
    assert again["avg_incremental_accuracy"] == again["aa"]
    for key in ("method", "tasks", "time_s_per_task", "params_per_task", "memory_samples"):
        assert key in again
    assert len(rec.csv_text().strip().splitlines()) == 6
    assert "±" in rec.table() and "CPI" in rec.table()
