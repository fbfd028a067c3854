"""What ``meshhub diag portal`` tells a technician for each kind of answer."""

from __future__ import annotations

import json

import pytest

from node.captive_probes import PROBES, CaptiveProbe, classify
from node.diag.phone import DnsAnswer, HttpAnswer
from node.diag.portal import judge, judge_api

APPLE, ANDROID, WINDOWS, FIREFOX, NETWORKMANAGER = PROBES
FOUND = DnsAnswer("x", ("10.64.7.1",))


def test_one_probe_per_system_with_plain_http_urls() -> None:
    assert [p.system.split()[0] for p in PROBES] == \
        ["Apple", "Android", "Windows", "Firefox", "Linux"]
    assert all(p.url.startswith("http://") and p.path.startswith("/") for p in PROBES)


@pytest.mark.parametrize(("probe", "status", "body"), [
    (APPLE, 200, "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"),
    (ANDROID, 204, ""),
    (WINDOWS, 200, "Microsoft Connect Test"),
    (FIREFOX, 200, "success\n"),
    (NETWORKMANAGER, 200, "NetworkManager is online\n"),
])
def test_the_expected_answer_means_online(probe: CaptiveProbe, status: int, body: str) -> None:
    outcome = judge(probe, FOUND, HttpAnswer(status, {}, body))
    assert outcome.result == "online"
    assert outcome.verdict == "the phone would consider itself online (no sign-in sheet)"


def test_near_misses_open_the_sheet() -> None:
    # Android wants 204: a 200 page (say, a portal's own page) is a sign-in sheet.
    outcome = judge(ANDROID, FOUND, HttpAnswer(200, {}, "<html>Welcome</html>"))
    assert outcome.result == "sign-in"
    assert outcome.verdict == ("the sign-in sheet would open, showing the page 10.64.7.1 "
                               "answered (HTTP 200) instead of the expected answer")
    assert judge(FIREFOX, FOUND, HttpAnswer(200, {}, "success")).result == "sign-in"
    assert judge(WINDOWS, FOUND, HttpAnswer(200, {}, "Microsoft Connect Test!")).result == \
        "sign-in"


def test_a_redirect_opens_the_sheet_and_says_where() -> None:
    answer = HttpAnswer(302, {"location": "http://10.64.7.1/welcome"}, "")
    outcome = judge(APPLE, FOUND, answer)
    assert outcome.result == "sign-in" and outcome.location == "http://10.64.7.1/welcome"
    assert outcome.verdict == "the sign-in sheet would open (redirected to http://10.64.7.1/welcome)"


def test_no_dns_or_no_answer_means_no_internet_and_no_sheet() -> None:
    missing = DnsAnswer("captive.apple.com", problem="no DNS answer from 10.64.7.1 within 3s")
    outcome = judge(APPLE, missing, None)
    assert outcome.result == "no-dns"
    assert outcome.verdict.startswith("no DNS answer from 10.64.7.1 within 3s: the phone "
                                      "would say it has no internet")
    silent = judge(ANDROID, FOUND, HttpAnswer(problem="no answer from 10.64.7.1 port 80"))
    assert silent.result == "no-answer" and "no sign-in sheet would open" in silent.verdict


def test_the_captive_api_verdicts() -> None:
    url = "http://10.64.7.1/api/captive"
    held = HttpAnswer(200, {"content-type": "application/captive+json"},
                      json.dumps({"captive": True, "user-portal-url": "http://10.64.7.1/welcome"}))
    api = judge_api(url, held)
    assert api.captive is True and api.user_portal_url == "http://10.64.7.1/welcome"
    assert api.verdict.startswith("held back: phones that read it would open "
                                  "http://10.64.7.1/welcome")
    assert "Android ignores an http:// API" in api.verdict
    free = HttpAnswer(200, {"content-type": "application/captive+json"},
                      json.dumps({"captive": False, "seconds-remaining": 1800}))
    assert judge_api("https://hub.mesh/api", free).verdict == "let through for 30 more minutes"
    wrong_type = judge_api(url, HttpAnswer(200, {"content-type": "application/json"},
                                           '{"captive": false}'))
    assert "not application/captive+json" in wrong_type.verdict
    assert "without the RFC 8908 JSON" in judge_api(url, HttpAnswer(200, {}, "<html>")).verdict
    assert judge_api(None, None).verdict.startswith("no option 114")
    assert "could not be fetched: refused" in judge_api(url, HttpAnswer(problem="refused")).verdict


def test_the_portal_answers_every_probe_as_the_diagnostic_expects() -> None:
    """What the portal answers (classify) is what each played check calls online."""
    for probe in PROBES:
        answer = classify(probe.host, probe.path, probe.user_agent)
        assert answer is probe.answer, probe.url
        assert probe.succeeds(answer.status, answer.body), (probe.system, answer)
