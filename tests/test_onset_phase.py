"""Collapse onset (genloop.loop.onset) against hand values, and a small phase-diagram sweep:
onset.csv and the summary's onset columns, the heat maps, and a diagram extended with new
cells without rerunning the finished ones."""
import csv
import math

import pytest

from genloop import run
from genloop.loop.onset import band, chain_onset
from genloop.report.phase import axes, first_movers, plot_phase


def test_onset_is_the_first_generation_outside_the_band():
    assert band(2.0, 0.1) == pytest.approx((1.8, 2.2)) and band(0.0, 0.1) == (-0.1, 0.1)
    rows = [{"generation": g, "a": v, "b": w} for g, (v, w) in enumerate([(1.0, 0.0), (0.95, 0.05), (0.85, 0.2),
                                                                          (1.2, 0.0)])]
    assert chain_onset(rows, {"a": 1.0, "b": 0.0}, 0.1) == {"a": 2, "b": 2}
    assert chain_onset(rows, {"a": 1.0, "b": 0.0}, 0.3) == {"a": None, "b": None}
    assert chain_onset(rows[:2], {"a": 1.0}, 0.01) == {"a": 1}


def test_first_movers_orders_metrics_by_mean_onset():
    rows = [{"setting": "s", "generation": "3", "onset_a_mean": "4", "onset_a_left": "1", "onset_b_mean": "2",
             "onset_b_left": "0.5", "onset_c_mean": "nan"}]
    assert first_movers(rows) == [{"setting": "s", "order": [(2.0, "b", 0.5), (4.0, "a", 1.0)]}]


GRID = ["data.name=categorical", "data.count=125", "data.valid_categories=[0,1,2,3]", "generator.name=categorical",
        "metrics.names=[categorical]", "loop.generations=6", "device=cpu", "generator.guidance_scale=1",
        "seeds=[0,1]", "loop.interaction=verify", "loop.synthetic_schedule=constant"]


def test_phase_diagram_sweep_onset_and_extension(tmp_path):
    out = tmp_path / "diagram"
    seen = []
    run(None, out, GRID + ["loop.synthetic_fraction=[0.5,1.0]", "loop.verify_false_accept=[0,1]"], report=False,
        on_generation=seen.append)
    assert len(seen) == 4 * 2 * 6
    onset = list(csv.DictReader(open(out / "onset.csv")))
    assert len(onset) == 8 and "onset_gini_simpson" in onset[0]
    summary = list(csv.DictReader(open(out / "summary.csv")))
    left = [float(r["onset_valid_share_left"]) for r in summary]
    assert all(0.0 <= x <= 1.0 for x in left)
    # a perfect verifier on pure synthetic data drops the invalid outcomes: the valid share leaves its band
    perfect = [r for r in summary if float(r["loop.verify_false_accept"]) == 0 and float(r["loop.synthetic_fraction"]) == 1]
    assert float(perfect[0]["onset_valid_share_left"]) == 1.0
    final = [r for r in perfect if r["generation"] == "5"][0]
    assert float(final["valid_share_mean"]) == 1.0
    from genloop.runfolder import RunStore

    numeric, others = axes(RunStore(out).chains())
    assert numeric == ["loop.synthetic_fraction", "loop.verify_false_accept"] and others == []
    figs = plot_phase(out, formats=("png",))
    names = {p.name for p, _ in figs}
    assert "phase_valid_share.png" in names and "phase_onset_valid_share.png" in names
    # a new cell value extends the diagram: only its chains run
    seen.clear()
    run(None, out, GRID + ["loop.synthetic_fraction=[0.5,1.0,0.0]", "loop.verify_false_accept=[0,1]"], report=False,
        on_generation=seen.append)
    assert len(seen) == 2 * 2 * 6 and {r["loop.synthetic_fraction"] for r in seen} == {0.0}
    assert len(list(csv.DictReader(open(out / "onset.csv")))) == 12
