"""The web UI tab's rows, in-process: order and the worst and best users."""
from __future__ import annotations


def test_tab_rows_keep_their_order_and_pick_worst_and_best_users():
    from lambda_affinity import summary, webui
    from lambda_affinity.tracker import Tracker

    t = Tracker()
    for u, (hits, n) in enumerate([(1, 4), (3, 4), (2, 4), (4, 4), (1, 2), (5, 10), (9, 10), (2, 8), (3, 3), (6, 9),
                                   (7, 7), (1, 5)]):
        for i in range(n):
            t.record(f"u{u + 1}", "A" if i < hits else f"B{i}")
    t.register("u13")  # no valid reply: in the totals, never worst or best
    rows = t.rows()
    table = webui.table_rows(summary.summarize(rows), rows)
    assert all("name" not in r for r in table)  # Locust's table would sort by it
    assert [r["section"] for r in table] == ["totals"] * 6 + ["distribution"] * 2 + ["histogram"] * 10 + \
        ["worst users"] * 5 + ["best users"] * 5
    worst = [r["item"] for r in table if r["section"] == "worst users"]
    best = [r["item"] for r in table if r["section"] == "best users"]
    # lowest max-share first, highest first; among equals the less measured is worse
    assert worst == ["u12", "u1", "u8", "u5", "u3"] and best == ["u11", "u4", "u9", "u7", "u2"]
    assert table[0] == {"section": "totals", "item": "users", "value": 13}
    few = [r for r in rows if r["user"] in ("u1", "u4", "u13")]
    table = webui.table_rows(summary.summarize(few), few)
    # two measured users: one worst, one best, no one twice
    assert [(r["section"], r["item"]) for r in table if "users" in r["section"]] == [
        ("worst users", "u1"), ("best users", "u4")]
