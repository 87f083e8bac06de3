"""The retraining policy (modelops/retraining.py): one episode per tenant-model whatever signal opened it, at
most one request per episode, a cooldown until the outcome, the waiting rule (not restarted by a flickering
signal), "self-correcting, no action", and nothing more after a refusal."""

from datetime import date, timedelta

from stratum_pipeline.modelops.retraining import (
    CHANGE_MEMORY_DAYS,
    EPISODE_QUIET_RESULTS,
    OUTCOME_TIMEOUT_DAYS,
    WAIT_DAYS,
    step,
)

DAY0 = date(2026, 6, 1)
ROAS = "acme/roas_model"


class Loop:
    """Steps the policy day by day and records each day's decisions."""

    def __init__(self):
        self.state, self.day, self.log = {}, -1, []

    def next(self, named=None, returning=None, outcomes=None, same_day=False):
        self.day += 0 if same_day else 1
        self.state, decisions = step(
            self.state, DAY0 + timedelta(days=self.day), named or {}, returning, outcomes
        )
        self.log += [(self.day, d) for d in decisions]
        return {d.key: d for d in decisions}

    def requests(self, key=ROAS):
        return [day for day, d in self.log if d.key == key and d.action == "retrain"]


def test_accuracy_and_drift_are_one_episode_with_one_request_after_the_wait_then_a_cooldown():
    loop = Loop()
    wait = WAIT_DAYS["roas_model"]
    first = loop.next({ROAS: {"accuracy"}})[ROAS]
    assert first.action == "waiting" and first.changed
    assert f"holds 1 of the {wait} post-change days" in first.text
    assert f"retrain from {DAY0 + timedelta(days=wait - 1)}" in first.text
    for day in range(1, wait - 1):  # drift joins, accuracy comes and goes: the same episode, still waiting
        named = {ROAS: {"drift"} if day % 2 else {"accuracy", "drift"}}
        decision = loop.next(named)[ROAS]
        assert decision.action == "waiting" and not decision.changed
    request = loop.next({ROAS: {"drift"}})[ROAS]
    assert request.action == "retrain" and request.changed and loop.day == wait - 1
    for _ in range(5):  # the outcome is not known yet: a cooldown, whatever names the model
        assert loop.next({ROAS: {"accuracy", "drift"}})[ROAS].action == "cooldown"
    promoted = loop.next({ROAS: {"accuracy"}}, outcomes={ROAS: "promoted"})[ROAS]
    assert promoted.action == "promoted"
    for _ in range(10):
        assert loop.next({ROAS: {"accuracy", "drift"}})[ROAS].action == "promoted"
    assert loop.requests() == [wait - 1]


def test_an_episode_ends_after_quiet_days_and_a_new_one_starts_afresh():
    loop = Loop()
    loop.next({ROAS: {"accuracy"}})
    for _ in range(EPISODE_QUIET_RESULTS - 1):
        loop.next()
    assert ROAS in loop.state  # two quiet days: still the same episode
    loop.next({ROAS: {"drift"}})
    assert loop.state[ROAS]["opened"] == DAY0.isoformat()
    for _ in range(EPISODE_QUIET_RESULTS):
        loop.next()
    assert loop.state[ROAS] == {
        "closed": (DAY0 + timedelta(loop.day)).isoformat(),
        "changed": DAY0.isoformat(),
        "phase": "open",
    }
    for _ in range(CHANGE_MEMORY_DAYS):
        loop.next()
    assert ROAS not in loop.state  # forgotten
    fresh = loop.next({ROAS: {"accuracy"}})[ROAS]
    assert fresh.action == "waiting" and fresh.changed and "holds 1 of the" in fresh.text
    assert loop.state[ROAS]["changed"] == (DAY0 + timedelta(loop.day)).isoformat()


def test_the_same_monitoring_day_stepped_twice_counts_no_quiet_day():
    loop = Loop()
    loop.next({ROAS: {"accuracy"}})
    for _ in range(EPISODE_QUIET_RESULTS - 1):
        loop.next()
        loop.next(same_day=True)  # the second signal asset of the same day, on a later tick
    assert loop.state[ROAS]["quiet"] == EPISODE_QUIET_RESULTS - 1


def test_a_requested_retrain_keeps_its_episode_open_until_its_outcome():
    loop = Loop()
    for _ in range(WAIT_DAYS["roas_model"]):
        loop.next({ROAS: {"accuracy"}})
    assert loop.requests() == [WAIT_DAYS["roas_model"] - 1]
    for _ in range(EPISODE_QUIET_RESULTS + 1):  # quiet, but the retrain has not answered
        loop.next()
    assert loop.state[ROAS]["phase"] == "requested"


def test_after_a_refusal_the_episode_asks_nothing_more_and_a_new_episode_may():
    loop = Loop()
    for _ in range(WAIT_DAYS["roas_model"]):
        loop.next({ROAS: {"accuracy"}})
    refused = loop.next({ROAS: {"accuracy"}}, outcomes={ROAS: "refused"})[ROAS]
    assert refused.action == "after_refusal" and "was refused by the gate" in refused.text
    assert "no new request in this episode" in refused.text
    for _ in range(60):
        assert loop.next({ROAS: {"accuracy", "drift"}})[ROAS].action == "after_refusal"
    assert loop.requests() == [WAIT_DAYS["roas_model"] - 1]
    for _ in range(EPISODE_QUIET_RESULTS):  # the episode ends...
        loop.next()
    back = loop.next({ROAS: {"accuracy"}})[ROAS]  # ...and the signal returns soon: the same degradation
    assert back.action == "after_refusal" and back.changed
    for _ in range(EPISODE_QUIET_RESULTS):  # it ends again...
        loop.next()
    for _ in range(CHANGE_MEMORY_DAYS):  # ...and is forgotten
        loop.next()
    reopened = loop.day + 1
    for _ in range(WAIT_DAYS["roas_model"]):  # a new episode: its own wait, its own request
        loop.next({ROAS: {"accuracy"}})
    assert loop.requests() == [WAIT_DAYS["roas_model"] - 1, reopened + WAIT_DAYS["roas_model"] - 1]


def test_a_flickering_signal_keeps_its_change_date_so_the_wait_is_not_restarted():
    loop = Loop()
    for _ in range(10):
        loop.next({ROAS: {"drift"}})
    for _ in range(EPISODE_QUIET_RESULTS + 2):  # the episode ends
        loop.next()
    assert "opened" not in loop.state[ROAS]
    while (
        loop.day < WAIT_DAYS["roas_model"] - 2
    ):  # back within CHANGE_MEMORY_DAYS: a new episode, same change date
        assert loop.next({ROAS: {"drift"}})[ROAS].action == "waiting"
    request = loop.next({ROAS: {"drift"}})[ROAS]
    assert request.action == "retrain" and request.recent_from == DAY0.isoformat()  # learn from the first day
    assert f"retrain requested from {DAY0}" in request.text
    assert loop.requests() == [WAIT_DAYS["roas_model"] - 1]


def test_a_conversion_episode_asks_after_its_own_shorter_wait_from_its_change_date():
    """The conversion retrain shifts its log-odds on the post-change sessions: a week is enough for it, while
    the ROAS model of the same tenant still waits; only a request carries a change date."""
    conversion = "acme/conversion_model"
    loop = Loop()
    for day in range(WAIT_DAYS["conversion_model"] - 1):
        decisions = loop.next({conversion: {"drift"}, ROAS: {"accuracy"}})
        assert {d.action for d in decisions.values()} == {"waiting"}
        assert all(d.recent_from is None for d in decisions.values())
    decisions = loop.next({conversion: {"drift"}, ROAS: {"accuracy"}})
    assert decisions[conversion].action == "retrain" and decisions[conversion].recent_from == DAY0.isoformat()
    assert decisions[ROAS].action == "waiting" and WAIT_DAYS["roas_model"] > WAIT_DAYS["conversion_model"]
    assert loop.requests(conversion) == [WAIT_DAYS["conversion_model"] - 1] and loop.requests() == []


def test_a_request_without_an_outcome_times_out_as_failed():
    loop = Loop()
    for _ in range(WAIT_DAYS["roas_model"]):
        loop.next({ROAS: {"accuracy"}})
    for _ in range(OUTCOME_TIMEOUT_DAYS - 1):
        assert loop.next({ROAS: {"accuracy"}})[ROAS].action == "cooldown"
    assert loop.next({ROAS: {"accuracy"}})[ROAS].action == "after_refusal"
    assert loop.state[ROAS]["phase"] == "failed"


def test_a_self_correcting_error_says_no_action_and_drift_alone_does_not_overrule_it():
    loop = Loop()
    loop.next({ROAS: {"accuracy"}})
    decision = loop.next({ROAS: {"accuracy"}}, returning={ROAS: "relative MAE down from 60% to 20%"})[ROAS]
    assert decision.action == "self_correcting" and decision.changed
    assert "self-correcting, no action (relative MAE down from 60% to 20%)" in decision.text
    while (
        loop.day < WAIT_DAYS["roas_model"] - 1
    ):  # a noisy trend (accuracy without `returning`) does not flip it
        named = {ROAS: {"accuracy"} if loop.day % 2 else {"drift"}}
        assert loop.next(named)[ROAS].action == "self_correcting"
    for _ in range(20):  # after the wait, the moved inputs drift but accuracy is fine: no retrain
        assert loop.next({ROAS: {"drift"}})[ROAS].action == "self_correcting"
    assert loop.requests() == []
    # after the wait, still degraded and no longer returning: the policy's other rules apply again
    assert loop.next({ROAS: {"accuracy"}})[ROAS].action == "retrain"


def test_the_default_model_is_retrained_at_once_once_per_episode():
    key = "default/roas_default_model"
    loop = Loop()
    assert loop.next({key: {"accuracy"}})[key].action == "retrain"
    for _ in range(3):
        assert loop.next({key: {"accuracy"}})[key].action == "cooldown"
    assert loop.requests(key) == [0]
