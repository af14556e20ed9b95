#!/usr/bin/python3
"""bench/harness/test_expect.py: the scenario checks of expect.py pass and fail on made-up results.

Runs in a second, before the harness smoke run (tests/integration/test_bench_smoke.sh):
each check is fed one result that must pass and one that must fail, so a check
that can never fail (or never pass) is caught without running a scenario.
"""
import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expect  # noqa: E402


def result():
    """A two-warning result shaped like run.py's analyse() output."""
    w = {"state": "sending", "t90_s": 2.0, "reached_share": 0.99, "submitted_at_s": 0.0, "id": "w-orange",
         "deliveries": {"queued": 0, "sent": 0, "accepted": 10, "cancelled": 0},
         "channel_series": {"sms": [[10, 0.5], [30, 0.92]], "app": [], "terminal": []}}
    red = dict(copy.deepcopy(w), id="w-red", submitted_at_s=3.0,
               channel_series={"sms": [[10, 0.6], [20, 0.95]], "app": [], "terminal": []})
    return {"warnings": {"orange": w, "red": red},
            "submits": {"orange": {"at_s": 0.0, "msg_type": "alert", "id": "w-orange"},
                        "red": {"at_s": 3.0, "msg_type": "alert", "id": "w-red"}},
            "sent_series": [[0, 0], [5, 100], [8, 200], [9, 200], [11, 200]],
            "lanes_idle_at_s": 40.0,
            "lanes": {"sms-1": {"channel": "sms", "throttled": 5}},
            "district": {"phones": 100, "apps": 50},
            "terminals_in_swarm": 10,
            "simulators": {"smsc": [{"throttled": 5, "accepted": 200, "unique_destinations": 100}],
                           "push": {"goaways": 3, "status": {"200": 100}, "unique_tokens": 50, "requests": 120},
                           "swarm": [{"warnings": {"w-orange": 10, "w-red": 10}}]}}


def run(key, value, r, **extra):
    sc = {"scenario": dict({key: value}, **extra), "warnings": [{"name": "orange"}, {"name": "red"}]}
    rows = expect.check(sc, r)
    assert len(rows) == 1, rows
    return rows[0]["ok"]


class ExpectTest(unittest.TestCase):
    def test_t90_and_share(self):
        r = result()
        self.assertTrue(run("expect_t90_s", "5", r))
        self.assertFalse(run("expect_t90_s", "1.5", r))
        r["warnings"]["red"]["t90_s"] = None
        self.assertFalse(run("expect_t90_s", "5", r))
        self.assertTrue(run("expect_reached_share", "0.95", result()))
        self.assertFalse(run("expect_reached_share", "0.995", result()))

    def test_first_to_90_uses_the_run_clock(self):
        r = result()   # red: 3 + 20 = 23 s; orange: 30 s
        self.assertTrue(run("expect_first_to_90", "red", r))
        self.assertFalse(run("expect_first_to_90", "orange", r))
        r["warnings"]["red"]["submitted_at_s"] = 12.0      # red now at 32 s
        self.assertFalse(run("expect_first_to_90", "red", r))
        r = result()
        r["warnings"]["red"]["channel_series"]["sms"] = [[10, 0.6]]    # never got there
        self.assertFalse(run("expect_first_to_90", "red", r))
        self.assertFalse(run("expect_first_to_90", "red", result(), expect_first_to_90_share="0.99"))

    def test_state_and_quiet_after_cancel(self):
        r = result()
        r["submits"]["cancel"] = {"at_s": 5.0, "msg_type": "cancel", "id": "w-cancel"}
        r["warnings"]["red"].update(state="cancelled", deliveries={"queued": 0, "cancelled": 400})
        self.assertTrue(run("expect_state_red", "cancelled", r))
        self.assertFalse(run("expect_state_orange", "cancelled", r))
        self.assertTrue(run("expect_quiet_after_cancel_s", "2", r))     # flat from 7 s on
        self.assertFalse(run("expect_quiet_after_cancel_s", "0", r))    # 100 sends between 5 and 8 s
        r2 = copy.deepcopy(r)
        r2["simulators"]["swarm"][0]["warnings"]["w-red"] = 11             # a terminal alerted twice
        self.assertFalse(run("expect_quiet_after_cancel_s", "2", r2))
        r2 = copy.deepcopy(r)
        r2["warnings"]["red"]["deliveries"]["queued"] = 3
        self.assertFalse(run("expect_quiet_after_cancel_s", "2", r2))
        r2 = copy.deepcopy(r)
        r2["sent_series"] = r2["sent_series"][:3]                          # not watched long enough
        self.assertFalse(run("expect_quiet_after_cancel_s", "2", r2))
        self.assertFalse(run("expect_quiet_after_cancel_s", "2", result()))  # no Cancel at all

    def test_finished_throttled_sms(self):
        r = result()
        self.assertTrue(run("expect_finished_within_s", "60", r))
        self.assertFalse(run("expect_finished_within_s", "30", r))
        r["lanes_idle_at_s"] = None
        self.assertFalse(run("expect_finished_within_s", "60", r))
        self.assertTrue(run("expect_throttled", "yes", result()))
        r = result()
        r["simulators"]["smsc"][0]["throttled"] = 0
        self.assertFalse(run("expect_throttled", "yes", r))
        self.assertTrue(run("expect_sms_accepted_share", "1", result()))   # 200 = 100 phones x 2 alerts
        r = result()
        r["simulators"]["smsc"][0]["accepted"] = 199
        self.assertFalse(run("expect_sms_accepted_share", "1", r))

    def test_push_and_terminals(self):
        self.assertTrue(run("expect_push_goaways", "yes", result()))
        self.assertTrue(run("expect_push_exactly_once", "yes", result()))
        r = result()
        r["simulators"]["push"]["status"]["200"] = 101                     # a duplicate
        self.assertFalse(run("expect_push_exactly_once", "yes", r))
        r["simulators"]["push"].update(goaways=0)
        self.assertFalse(run("expect_push_goaways", "yes", r))
        self.assertTrue(run("expect_terminals_alerted_share", "1", result()))
        r = result()
        r["simulators"]["swarm"][0]["warnings"]["w-red"] = 9
        self.assertFalse(run("expect_terminals_alerted_share", "0.95", r))

    def test_validate_rejects_unknown_keys(self):
        sc = {"scenario": {"expect_t90_s": "1", "expect_t09_s": "1", "expect_state_blue": "done",
                           "expect_first_to_90": "green"},
              "warnings": [{"name": "red"}]}
        bad = expect.validate(sc)
        self.assertEqual(len(bad), 3, bad)


if __name__ == "__main__":
    unittest.main()
