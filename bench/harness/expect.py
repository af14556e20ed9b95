"""bench/harness/expect.py: the `expect_*` keys of a scenario file, checked against its result.

Each key of a scenario's [scenario] section that starts with `expect_` names a
check below; `check(sc, result)` runs them all and returns one row per key:
{"key", "value", "ok", "detail"}. An unknown key is an error when the scenario
file is loaded (`validate`), so a typo cannot silently turn a check off.

Checks read only what run.py measured: the engine's own figures (status
series per warning and channel, the settled coverage from GET
/v1/warnings/{id}, lane counters sampled over the run) and the simulators'
independent counts (smsc_sim, push_sim, terminal_swarm). Times are seconds
after the first submit of the scenario ("run clock") unless a key says
"after admission".

| key | value | passes when |
|---|---|---|
| expect_t90_s | T | every alert not cancelled reached 90% of its targeted persons within T s of its admission |
| expect_reached_share | S | every alert not cancelled ends with reached/targeted >= S |
| expect_state_NAME | state | warning NAME's settled state (GET /v1/warnings/{id}) is `state` |
| expect_first_to_90 | NAME | on channel expect_first_to_90_channel (default sms), NAME's persons reached that channel's share expect_first_to_90_share (default 0.9) before every other alert did, on the run clock (an alert that never got there in the run counts as later) |
| expect_quiet_after_cancel_s | N | for every Cancel: from its submit + N s to the end of the run (at least 2 s observed) the SMS and app lanes' `sent` counters did not move (the terminal lane carries the Cancel's own stop messages); the cancelled warning has no queued delivery left, some `cancelled` ones, and no terminal got it twice (terminal_swarm's count) |
| expect_finished_within_s | T | every lane was idle (nothing queued or in flight) by T s and stayed so, and no alert has a queued delivery left |
| expect_throttled | yes | the SMSC answered ESME_RTHROTTLED (smsc_sim count) and the SMS lanes counted throttles |
| expect_sms_accepted_share | S | smsc_sim accepted (not throttled) at least S x phones x alerts submit_sm, to at least S x phones distinct numbers |
| expect_push_goaways | yes | push_sim sent GOAWAY at least once |
| expect_push_exactly_once | yes | push_sim accepted every app token of the district once per alert: accepted requests = apps x alerts, tokens seen = apps |
| expect_terminals_alerted_share | S | the swarm's terminals that received each alert >= S x the terminals in the swarm |
"""

CHANNELS = ("sms", "app", "terminal")
KNOWN = ("expect_t90_s", "expect_reached_share", "expect_first_to_90", "expect_first_to_90_channel",
         "expect_first_to_90_share", "expect_quiet_after_cancel_s", "expect_finished_within_s", "expect_throttled",
         "expect_sms_accepted_share", "expect_push_goaways", "expect_push_exactly_once",
         "expect_terminals_alerted_share")
PARAMS = ("expect_first_to_90_channel", "expect_first_to_90_share")   # parameters of another key, not checks


def validate(sc):
    """The unknown expect_* keys of a loaded scenario (an empty list when all are known)."""
    names = {w["name"] for w in sc["warnings"]}
    bad = []
    for k, v in sc["scenario"].items():
        if not k.startswith("expect_"):
            continue
        if k.startswith("expect_state_"):
            if k[len("expect_state_"):] not in names:
                bad.append("%s (no [warning %s])" % (k, k[len("expect_state_"):]))
        elif k not in KNOWN:
            bad.append(k)
        elif k == "expect_first_to_90" and v not in names:
            bad.append("%s = %s (no such warning)" % (k, v))
    return bad


def _alerts(r):
    return {n: w for n, w in r["warnings"].items()}


def _live_alerts(r):
    return {n: w for n, w in r["warnings"].items() if w["state"] not in ("cancelled", "superseded")}


def _crossing(points, share):
    for t, v in points:
        if v >= share:
            return t
    return None


def t90_s(r, sc, v):
    lim, bad, parts = float(v), [], []
    for n, w in _live_alerts(r).items():
        parts.append("%s %s s" % (n, "–" if w["t90_s"] is None else "%.2f" % w["t90_s"]))
        if w["t90_s"] is None or w["t90_s"] > lim:
            bad.append(n)
    return not bad and bool(parts), ", ".join(parts) or "no alert"


def reached_share(r, sc, v):
    lim, bad, parts = float(v), [], []
    for n, w in _live_alerts(r).items():
        parts.append("%s %.1f%%" % (n, 100 * w["reached_share"]))
        if w["reached_share"] < lim:
            bad.append(n)
    return not bad and bool(parts), ", ".join(parts) or "no alert"


def state(name):
    def f(r, sc, v):
        w = r["warnings"].get(name)
        if not w:
            return False, "warning %s has no result" % name
        d = w["deliveries"]
        return w["state"] == v, "%s is %s (deliveries queued %d, cancelled %d)" % (
            name, w["state"], d.get("queued", 0), d.get("cancelled", 0))
    return f


def first_to_90(r, sc, v):
    ch = sc["scenario"].get("expect_first_to_90_channel", "sms")
    share = float(sc["scenario"].get("expect_first_to_90_share", "0.9"))
    times = {}
    for n, w in _alerts(r).items():
        t = _crossing(w["channel_series"][ch], share)
        times[n] = None if t is None else w["submitted_at_s"] + t
    detail = ", ".join("%s at %s" % (n, "never" if t is None else "%.1f s" % t) for n, t in times.items())
    detail = "%s reached %.0f%% on %s: %s (run clock)" % ("persons", 100 * share, ch, detail)
    me = times.get(v)
    if me is None:
        return False, detail
    return all(t is None or t > me for n, t in times.items() if n != v), detail


def quiet_after_cancel_s(r, sc, v):
    grace = float(v)
    cancels = [s for s in r["submits"].values() if s["msg_type"] == "cancel"]
    if not cancels:
        return False, "no Cancel in the scenario"
    t_from = max(s["at_s"] for s in cancels) + grace
    xs = [x for x in r["sent_series"] if x[0] >= t_from]
    if len(xs) < 2 or xs[-1][0] - xs[0][0] < 2:
        return False, "only %.1f s observed after cancel + %g s" % ((xs[-1][0] - xs[0][0]) if xs else 0, grace)
    moved = xs[-1][1] - xs[0][1]
    ok = moved == 0
    parts = ["SMS+app lane sends from %.1f s to %.1f s: %d" % (xs[0][0], xs[-1][0], moved)]
    n_term = r["terminals_in_swarm"]
    for n, w in r["warnings"].items():
        if w["state"] in ("cancelled", "superseded"):
            d = w["deliveries"]
            alerts = sum(((x or {}).get("warnings") or {}).get(w["id"], 0) for x in r["simulators"]["swarm"])
            parts.append("%s: queued %d, cancelled %d, %d alerts for %d terminals" % (
                n, d.get("queued", 0), d.get("cancelled", 0), alerts, n_term))
            ok = ok and d.get("queued", 0) == 0 and d.get("cancelled", 0) > 0 and alerts <= n_term
    return ok, "; ".join(parts)


def finished_within_s(r, sc, v):
    t = r.get("lanes_idle_at_s")
    queued = {n: w["deliveries"].get("queued", 0) for n, w in _live_alerts(r).items()}
    ok = t is not None and t <= float(v) and not any(queued.values())
    return ok, "lanes idle from %s; queued deliveries left: %s" % (
        "never" if t is None else "%.1f s" % t, ", ".join("%s %d" % kv for kv in queued.items()))


def throttled(r, sc, v):
    sim = sum((x or {}).get("throttled", 0) for x in r["simulators"]["smsc"])
    eng = sum(l["throttled"] for l in r["lanes"].values() if l["channel"] == "sms")
    return sim > 0 and eng > 0, "smsc_sim answered %d ESME_RTHROTTLED; SMS lanes counted %d throttles" % (sim, eng)


def sms_accepted_share(r, sc, v):
    sims = [x or {} for x in r["simulators"]["smsc"]]
    seen = max([x.get("unique_destinations", 0) for x in sims] or [0])
    acc = sum(x.get("accepted", 0) for x in sims)
    phones, n = r["district"].get("phones", 0), len(_live_alerts(r))
    want = float(v) * phones
    return acc >= want * n and seen >= want, "smsc_sim accepted %d submit_sm for %d phones x %d alert(s); %d distinct numbers" % (
        acc, phones, n, seen)


def push_goaways(r, sc, v):
    g = (r["simulators"]["push"] or {}).get("goaways", 0)
    return g > 0, "push_sim sent %d GOAWAY" % g


def push_exactly_once(r, sc, v):
    p = r["simulators"]["push"] or {}
    apps, n = r["district"].get("apps", 0), len(_live_alerts(r))
    acc, toks, req = p.get("status", {}).get("200", 0), p.get("unique_tokens", 0), p.get("requests", 0)
    ok = acc == apps * n and toks == apps
    return ok, "push_sim: %d requests, %d accepted (want %d = %d apps x %d alerts), %d distinct tokens" % (
        req, acc, apps * n, apps, n, toks)


def terminals_alerted_share(r, sc, v):
    n = r["terminals_in_swarm"]
    ok, parts = True, []
    for wn, w in _live_alerts(r).items():
        got = sum(((x or {}).get("warnings") or {}).get(w["id"], 0) for x in r["simulators"]["swarm"])
        parts.append("%s: %d of %d terminals" % (wn, got, n))
        ok = ok and got >= float(v) * n
    return ok and bool(parts), ", ".join(parts)


CHECKS = {"expect_t90_s": t90_s, "expect_reached_share": reached_share, "expect_first_to_90": first_to_90,
          "expect_quiet_after_cancel_s": quiet_after_cancel_s, "expect_finished_within_s": finished_within_s,
          "expect_throttled": throttled, "expect_sms_accepted_share": sms_accepted_share,
          "expect_push_goaways": push_goaways, "expect_push_exactly_once": push_exactly_once,
          "expect_terminals_alerted_share": terminals_alerted_share}


def check(sc, r):
    rows = []
    for k, v in sc["scenario"].items():
        if not k.startswith("expect_") or k in PARAMS:
            continue
        f = state(k[len("expect_state_"):]) if k.startswith("expect_state_") else CHECKS[k]
        try:
            ok, detail = f(r, sc, v)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            ok, detail = False, "could not check: %s: %s" % (type(e).__name__, e)
        rows.append({"key": k, "value": v, "ok": bool(ok), "detail": detail})
    return rows
