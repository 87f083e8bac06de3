"""The retraining policy: what one day's monitoring results mean for each tenant-model's degradation episode.

Pure decision logic (no Dagster): `retraining_sensor` calls `step` once per monitoring day with the models the
monitoring assets named, and `benchmarks/monitoring.py` replays days through the same function.

An *episode* is one degradation of one tenant-model, whatever signal opened it (accuracy, drift or
calibration): the signals of a day are merged, and the episode ends only after EPISODE_QUIET_RESULTS
monitoring days in a row that no longer name the model (and never while a requested retrain has no outcome).
Within an episode, each day the model is named, the first rule that applies decides:

1. **Cooldown**: a retrain was requested and its outcome (promoted, refused, failed) is not known yet: nothing
   (after OUTCOME_TIMEOUT_DAYS without an outcome it counts as failed).
2. **Promoted**: the episode's retrain was promoted: the new champion is watched, nothing more is requested.
3. **Self-correcting**: the accuracy signal says the forecast error is already returning toward its
   pre-change level (`ml.monitoring.error_returning`), or did so earlier in the episode and either the wait
   (rule 4) is not over or only drift still names the model: "self-correcting, no action". (The ROAS model
   forecasts relative to the trailing ROAS, so a level shift fades out of its error within about a week; a
   retrain would learn mostly the old regime.) An error still degraded and no longer returning once the wait is
   over goes on to rule 5/6.
4. **Waiting**: the episode is younger than WAIT_DAYS[model] days: a retrain's training window could not hold
   enough data from after the change (the change is dated, conservatively, to the episode's first day).
   The alert says from which day the retrain will be requested.
5. **After a refusal** (or a failed run): the episode requests nothing more. New post-change data changes the
   picture through the scheduled retraining (monthly, or weekly for tenants switched to it), which trains on it
   whatever the episode says, or through a new episode once this one has ended (the signal gone for
   EPISODE_QUIET_RESULTS days). So an episode makes at most one request.
6. Otherwise: **request one retrain**, from the change date: the retrain favours the days since (sample
   weights) and is judged on them (`Decision.recent_from`, modelops.training's `recent_from`).

The change is dated to the episode's first day. If a signal flickers (an episode ends and another opens within
CHANGE_MEMORY_DAYS of its end), the new episode continues the earlier one's change date and outcome: the wait
is not restarted by noise, and a degradation whose retrain was refused is not asked again through a new
episode.

Each decision carries a one-line text for the alert; `changed` says whether the action differs from the
episode's previous one (one alert per change of action, not one per day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# An episode ends after this many monitoring days in a row that no longer name the model: a signal that comes and
# goes around its threshold (a noisy week) is one episode, not a retrain per return.
EPISODE_QUIET_RESULTS = 3

# Days from the episode's first day before a retrain is requested, per model asset. Every request says from which
# day it should learn (`Decision.recent_from`, the episode's change date): the retrain weights the rows from that
# day on (ml.recency) and judges on the later half of the post-change days (modelops.training). The ROAS retrain
# trains on a 35-day window: after 28 days since the change, 14 of its 21 training days are from the new regime
# (an oracle bound in benchmarks/monitoring.py: no earlier ROAS retrain recovers a response change faster in the
# realistic regime). The conversion retrain shifts its log-odds on the post-change sessions (a conversion shift
# moves the calibration, not the ranking): 7 days give it 4 days of sessions to fit and 3 to be judged on.
# Measured in benchmarks/monitoring.py (--wait); see README "Monitoring and retraining". The default model
# (trained on every tenant) learns nothing from waiting for one tenant: it is retrained at once.
WAIT_DAYS = {"roas_model": 28, "conversion_model": 7}
DEFAULT_WAIT_DAYS = 0
# An episode that opens within this many days of the end of the previous one (same tenant-model) keeps the
# previous one's change date and outcome: a calibration gap hovering around its threshold must not restart the
# wait, nor a refused degradation be asked again by returning after a few quiet days.
CHANGE_MEMORY_DAYS = 14
# A requested retrain with no outcome after this many days (a run that never started, a lost cursor) counts as
# failed, so an episode is never stuck in its cooldown.
OUTCOME_TIMEOUT_DAYS = 7

RETRAIN, COOLDOWN, PROMOTED, SELF_CORRECTING, WAITING, AFTER_REFUSAL = (
    "retrain",
    "cooldown",
    "promoted",
    "self_correcting",
    "waiting",
    "after_refusal",
)
OUTCOMES = ("promoted", "refused", "failed")
OUTCOME_TEXT = {
    "refused": "refused by the gate",
    "failed": "not completed (a failed run, no model trained, or no outcome within 7 days)",
}


@dataclass(frozen=True)
class Decision:
    key: str  # "tenant/model asset"
    action: str  # one of RETRAIN, COOLDOWN, PROMOTED, SELF_CORRECTING, WAITING, AFTER_REFUSAL
    text: str  # the alert's one line
    changed: bool  # the action differs from the episode's previous decision
    recent_from: str | None = None  # RETRAIN: the change date the retrain should learn from (ISO)

    @property
    def tenant(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def model(self) -> str:
        return self.key.split("/", 1)[1]


def episode_key(tenant: str, model: str) -> str:
    return f"{tenant}/{model}"


def _day(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def wait_days(key: str, wait: dict[str, int] | None = None) -> int:
    return (wait or WAIT_DAYS).get(key.split("/", 1)[1], DEFAULT_WAIT_DAYS)


def step(
    state: dict,
    day: str | date,
    named: dict[str, set[str]],
    returning: dict[str, str] | None = None,
    outcomes: dict[str, str] | None = None,
    wait: dict[str, int] | None = None,
) -> tuple[dict, list[Decision]]:
    """One monitoring day. `state`: {key: episode} from the previous step (JSON-serialisable, the sensor's
    cursor); `named`: {key: {signal, ...}} the models named today; `returning`: {key: reason} the models whose
    accuracy says the error is returning toward its pre-change level; `outcomes`: {key: 'promoted' | 'refused'
    | 'failed'} of retrains requested earlier; `wait`: WAIT_DAYS overrides (the benchmark's sweep).
    Returns the new state and one Decision per named model. Stepping the same day again merges its signals
    without counting a quiet day."""
    today = _day(day)
    returning, outcomes = returning or {}, outcomes or {}
    new_state: dict[str, dict] = {}
    decisions = []
    for key in sorted(set(state) | set(named)):
        episode = dict(state.get(key) or {})
        if episode.get("phase") == "requested":
            outcome = outcomes.get(key)
            if outcome is None and (today - _day(episode["requested_day"])).days >= OUTCOME_TIMEOUT_DAYS:
                outcome = "failed"
            if outcome in OUTCOMES:
                episode["phase"] = outcome
                episode["outcome_day"] = today.isoformat()
        if key not in named:
            if "opened" not in episode:  # nothing open; an ended episode's change date is kept for a while
                if episode and (today - _day(episode["closed"])).days < CHANGE_MEMORY_DAYS:
                    new_state[key] = episode
                continue
            if today > _day(episode["last_day"]):
                episode["quiet"] = episode.get("quiet", 0) + 1
                episode["last_day"] = today.isoformat()
            if episode["quiet"] < EPISODE_QUIET_RESULTS or episode.get("phase") == "requested":
                new_state[key] = episode
            else:  # ended: its change date and outcome are kept for CHANGE_MEMORY_DAYS
                new_state[key] = {
                    "closed": today.isoformat(),
                    **{k: episode[k] for k in ("changed", "phase", "outcome_day") if k in episode},
                }
            continue
        if "opened" not in episode:
            recent = "closed" in episode and (today - _day(episode["closed"])).days < CHANGE_MEMORY_DAYS
            episode = {
                "opened": today.isoformat(),
                "changed": episode["changed"] if recent else today.isoformat(),
                "phase": episode.get("phase", "open") if recent else "open",
                **({"outcome_day": episode["outcome_day"]} if recent and "outcome_day" in episode else {}),
                "requests": 0,
                "action": None,
            }
        episode["quiet"] = 0
        episode["last_day"] = today.isoformat()
        episode.setdefault("signals", [])
        episode["signals"] = sorted(set(episode["signals"]) | set(named[key]))
        action, text = _decide(key, episode, today, named[key], returning.get(key), wait)
        if action == RETRAIN:
            episode["phase"] = "requested"
            episode["requests"] = episode.get("requests", 0) + 1
            episode["requested_day"] = today.isoformat()
        if action == SELF_CORRECTING:
            episode["self_correcting"] = True
        changed = action != episode.get("action")
        episode["action"] = action
        new_state[key] = episode
        since = episode.get("changed", episode["opened"]) if action == RETRAIN else None
        decisions.append(Decision(key, action, text, changed, since))
    return new_state, decisions


def _decide(
    key: str, episode: dict, today: date, signals: set[str], returning: str | None, wait: dict | None
) -> tuple[str, str]:
    opened = _day(episode.get("changed", episode["opened"]))
    days = (today - opened).days + 1  # days since the change, counting its first day
    phase = episode["phase"]
    model = key.split("/", 1)[1]
    named_by = "+".join(sorted(signals))
    if phase == "requested":
        return COOLDOWN, (
            f"{key}: retrain requested on {episode['requested_day']}, waiting for its outcome ({named_by})"
        )
    if phase == "promoted":
        return PROMOTED, f"{key}: the episode's retrain was promoted on {episode['outcome_day']}; watching it"
    needed = wait_days(key, wait)
    # Once seen returning, the episode stays self-correcting until its wait is over (one day's noisy trend does
    # not flip it back), and afterwards while only drift names the model (its inputs moved, its error did not).
    if returning or (episode.get("self_correcting") and ("accuracy" not in signals or days < needed)):
        why = returning or "the forecast error was returning earlier in this episode"
        return SELF_CORRECTING, f"{key}: self-correcting, no action ({why})"
    if days < needed:
        ready = opened + timedelta(days=needed - 1)
        return WAITING, (
            f"{key}: degraded since {opened} ({named_by}); waiting: a retrain's window holds {days} of the "
            f"{needed} post-change days {model} needs, retrain from {ready} if still degraded"
        )
    if phase in ("refused", "failed"):
        outcome = OUTCOME_TEXT[phase]
        return AFTER_REFUSAL, (
            f"{key}: the episode's retrain was {outcome} ({episode['outcome_day']}); no new request in this "
            "episode (the scheduled retraining trains on newer data; a new episode may ask again)"
        )
    return RETRAIN, (
        f"{key}: retrain requested from {opened}: degraded since then ({named_by}), {days} post-change days"
    )
