"""worker/translation/backends.py, worker/translation/prompt.py and worker/translation/job.py
against a real OpenAI-compatible server.

`ChatServer`, on 127.0.0.1, speaks the Chat Completions protocol and answers, by default, with
the recorded real Chinese translations of the sample listing date
(newsletter/data/demo_2026-05-29.json). Those recordings have their TeX broken
("美元"), so the server first strips what it cannot place and then puts our
placeholders back into the Chinese where the English had them, as a careful
model would. Tests swap in other answers: errors, 429 with Retry-After,
malformed output, lost placeholders, slow responses.
"""

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port
from sqlalchemy import select

from newsletter import db, replace_settings
from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.config import settings as app_settings
from newsletter.config_parsers import ConfigError
from newsletter.db import utcnow
from newsletter.models import (
    AnnounceType,
    Keyword,
    ListingDay,
    Paper,
    Subscriber,
    SubscriberStatus,
    Translation,
    TranslationStatus,
)
from worker.demo.load import read_demo
from worker.digest.selection import match_papers
from worker.http import retry_after_seconds
from worker.translation.backends import RecordedBackend
from worker.translation.job import load_glossary, target_from_config, translate_day
from worker.translation.limits import TokenBudget
from worker.translation.openai_backend import OpenAIBackend
from worker.translation.placeholders import PLACEHOLDER, protect
from worker.translation.prompt import (
    Target,
    TranslationError,
    check_translation,
    parse_answer,
    relevant_terms,
)
from worker.translation.seam import SourcePaper, make_batches, translate_papers

DEMO = read_demo()
DEMO_DATE = date.fromisoformat(DEMO["listing_date"])
RECORDED = {p["arxiv_id"]: p for p in DEMO["papers"]}
TOKENS_PER_REQUEST = 150


# --- the fake endpoint ---


@dataclass
class Reply:
    status: int = 200
    body: dict | str = ""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    body: dict
    headers: dict
    at: float

    @property
    def papers(self) -> list[dict]:
        return json.loads(self.body["messages"][1]["content"])["papers"]

    @property
    def ids(self) -> list[str]:
        return [p["id"] for p in self.papers]

    @property
    def system(self) -> str:
        return self.body["messages"][0]["content"]


def with_placeholders(english: str, chinese: str) -> str:
    """The recorded Chinese, cleaned of its broken TeX, with the English's placeholders in place."""
    clean = PLACEHOLDER.sub("", protect(chinese).text).replace("美元", "")
    out, last = [], 0
    for match in PLACEHOLDER.finditer(english):
        at = max(last, round(match.start() / len(english) * len(clean)))
        out += [clean[last:at], match.group()]
        last = at
    return "".join(out) + clean[last:]


def chinese_for(paper: dict) -> dict:
    """A faithful answer for one requested paper: recorded Chinese, placeholders kept."""
    arxiv_id = paper["id"].rsplit("v", 1)[0]
    recorded = RECORDED.get(
        arxiv_id, {"zh": {"title": "一篇论文的标题", "abstract": "这是一篇论文的摘要。" * 20}}
    )
    return {
        "id": paper["id"],
        "title": with_placeholders(paper["title"], recorded["zh"]["title"]),
        "abstract": with_placeholders(paper["abstract"], recorded["zh"]["abstract"]),
    }


def completion(content: str, usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        if usage is not None
        else {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": TOKENS_PER_REQUEST},
    }


def answer(request: Request, edit: Callable[[dict], dict] = lambda item: item) -> Reply:
    items = [edit(chinese_for(p)) for p in request.papers]
    return Reply(body=completion(json.dumps({"translations": items}, ensure_ascii=False)))


class ChatServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 with scripted faults."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        # Replies for the next requests, in order; then `respond`.
        self.script: list[Callable[[Request], Reply]] = []
        self.respond: Callable[[Request], Reply] = answer
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                request = Request(body, dict(self.headers), time.monotonic())
                with server._lock:
                    server.requests.append(request)
                    make = server.script.pop(0) if server.script else server.respond
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = (
                        make(request)
                        if self.path == "/v1/chat/completions"
                        else Reply(404, "no such path")
                    )
                    time.sleep(reply.delay)
                    payload = (
                        reply.body
                        if isinstance(reply.body, str)
                        else json.dumps(reply.body, ensure_ascii=False)
                    )
                    data = payload.encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll: shutdown() waits for it (0.5 s by default, at the end of each test).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def id_counts(self) -> Counter:
        return Counter(i for r in self.requests for i in r.ids)


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


def settings(url: str, **overrides) -> dict:
    values = {
        "TRANSLATION_BACKEND": "openai",
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-test",
        "TRANSLATION_MODEL": "test-model",
        "TRANSLATION_LANGUAGE": "zh",
        "TRANSLATION_LANGUAGE_NAME": None,
        "TRANSLATION_GLOSSARY_PATH": None,
        "TRANSLATION_TIMEOUT": 5.0,
        "TRANSLATION_BATCH_SIZE": 4,
        "TRANSLATION_RETRIES": 2,
        "TRANSLATION_RETRY_BACKOFF": 0.01,
        "TRANSLATION_REQUESTS_PER_MINUTE": 0,
        "TRANSLATION_CONCURRENCY": 4,
        "TRANSLATION_DAILY_TOKEN_BUDGET": 0,
        "TRANSLATION_DEADLINE_MINUTES": 60,
    }
    values.update(overrides)
    return values


def backend_settings(url: str, **overrides) -> Settings:
    return replace(DEFAULTS, **settings(url, **overrides))


# Every setting at its default, as a process without an environment has them.
DEFAULTS = load_settings({}, ".", dev=True)
ZH = Target("zh", "Simplified Chinese", load_glossary("zh"))


def source(arxiv_id: str) -> SourcePaper:
    paper = RECORDED[arxiv_id]
    return SourcePaper(arxiv_id, paper["version"], paper["title"], paper["abstract"])


# 2605.29032 has `$1.5$-$2.2\times$` (the "美元" defect); 2605.28860 has \cite{...};
# 2605.28842 has \textbf{...}.
TEX_PAPERS = ["2605.29032", "2605.28860", "2605.28842"]
SAMPLE = [source(arxiv_id) for arxiv_id in list(RECORDED) if arxiv_id not in TEX_PAPERS][:8]


# --- glossary and prompt ---


def test_shipped_glossary_has_the_field_terms():
    glossary = load_glossary("zh")
    assert len(glossary) >= 85
    for term, rendering in [
        ("reinforcement learning", "强化学习"),
        ("out-of-distribution", "分布外"),
        ("reward hacking", "奖励投机"),
        ("diffusion policy", "扩散策略"),
        ("large language model", "大语言模型"),
        ("token", "词元"),
    ]:
        assert glossary[term] == rendering


def test_operator_glossary_extends_and_overrides(tmp_path, caplog):
    extra = tmp_path / "extra.tsv"
    extra.write_text("# ours\ntoken\t令牌\nspin foam\t自旋泡沫\nnot a tab line\n", encoding="utf-8")
    glossary = load_glossary("zh", str(extra))
    assert glossary["token"] == "令牌" and glossary["spin foam"] == "自旋泡沫"
    assert "extra.tsv:4: not 'term<TAB>translation'; ignored" in caplog.text
    assert load_glossary("ja") == {}  # no file yet: no hints, still translatable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Large Language Models (LLMs) hallucinations", {"large language model", "hallucination"}),
        ("offline reinforcement learning with tokens", {"offline reinforcement learning", "token"}),
        ("a tokenizer-free model", set()),  # "tokenizer-free" is not "tokenizer" nor "token"
        ("reward hacking and out-of-distribution data", {"reward hacking", "out-of-distribution"}),
    ],
)
def test_relevant_terms(text, expected):
    glossary = {k: v for k, v in load_glossary("zh").items() if k != "tokenizer-free"}
    assert set(relevant_terms(glossary, [text])) == expected


def test_target_language_is_configuration():
    target = target_from_config(replace(DEFAULTS, TRANSLATION_LANGUAGE="ja"))
    assert (target.language, target.name) == ("ja", "Japanese")
    named = target_from_config(
        replace(DEFAULTS, TRANSLATION_LANGUAGE="eo", TRANSLATION_LANGUAGE_NAME="Esperanto")
    )
    assert named.name == "Esperanto"


@pytest.mark.parametrize(
    ("environ", "error"),
    [
        ({"TRANSLATION_BACKEND": "deepl"}, "TRANSLATION_BACKEND must be none, openai or recorded"),
        (
            {"TRANSLATION_LANGUAGE": "../../etc/passwd"},
            "TRANSLATION_LANGUAGE must be a language code",
        ),
        ({"TRANSLATION_LANGUAGE": "zh cn"}, "TRANSLATION_LANGUAGE must be a language code"),
        ({"TRANSLATION_RETRY_BACKOFF": "fast"}, "TRANSLATION_RETRY_BACKOFF must be a number"),
    ],
)
def test_bad_translation_settings_stop_the_start(environ, error, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_settings(environ, str(tmp_path), dev=True)


def test_translation_settings_defaults(tmp_path):
    config = load_settings({"TRANSLATION_LANGUAGE": "ZH-TW"}, str(tmp_path), dev=True)
    assert config.TRANSLATION_LANGUAGE == "zh-tw" and config.TRANSLATION_BACKEND == "none"
    assert (config.TRANSLATION_BATCH_SIZE, config.TRANSLATION_RETRIES) == (4, 4)


def test_batches_are_bounded_by_papers_and_characters():
    papers = [SourcePaper(str(i), 1, "t", "a" * 2000) for i in range(10)]
    assert [len(b) for b in make_batches(papers, 4)] == [4, 4, 2]
    assert [len(b) for b in make_batches(papers, 4, max_chars=4100)] == [2, 2, 2, 2, 2]
    assert [len(b) for b in make_batches(papers[:1], 4, max_chars=10)] == [1]


# --- validation (pure) ---

GOOD_TITLE = "⟦0⟧：用于扩散策略的强化学习"
TITLE = protect("$\\pi$: Reinforcement Learning for Diffusion Policy")
ABSTRACT = protect(RECORDED["2605.29032"]["abstract"])
GOOD_ABSTRACT = with_placeholders(ABSTRACT.text, RECORDED["2605.29032"]["zh"]["abstract"])


@pytest.mark.parametrize(
    ("field", "answer", "error"),
    [
        ("title", GOOD_TITLE, None),
        ("abstract", GOOD_ABSTRACT, None),
        ("title", "用于扩散策略的强化学习", "⟦0⟧ lost"),
        ("title", "⟦0⟧⟦0⟧：强化学习", "duplicated"),
        ("title", "⟦0⟧ ⟦1⟧：强化学习", "invented"),
        ("title", "⟦0⟧：用于扩散策略的⟦强化学习", "altered"),
        ("title", "```\n⟦0⟧：强化学习\n```", "Markdown fence"),
        ("title", "Here is the translation: ⟦0⟧：强化学习", "commentary"),
        ("abstract", "以下是翻译：" + GOOD_ABSTRACT, "commentary"),
        ("abstract", GOOD_ABSTRACT + "\nNote: terms kept in English.", "commentary"),
        ("title", "⟦0⟧: Reinforcement Learning for Diffusion Policy", "not in Simplified Chinese"),
        ("abstract", ABSTRACT.text, "not in Simplified Chinese"),
        ("abstract", "".join(re.findall(r"⟦\d+⟧", ABSTRACT.text)) + "很短。", "length ratio"),
        ("abstract", GOOD_ABSTRACT + "很长的文字。" * 300, "length ratio"),
        ("abstract", "下面是本文摘要的中文翻译：\n" + GOOD_ABSTRACT, "commentary"),
        ("abstract", "这是首个" + GOOD_ABSTRACT, None),  # a sentence, not commentary
        ("title", "⟦0⟧：强化\n学习", "more than one line"),
        ("title", "", "empty"),
        ("title", None, "empty"),
    ],
)
def test_check_translation(field, answer, error):
    source_text = TITLE if field == "title" else ABSTRACT
    if error is None:
        restored = check_translation(source_text, answer, ZH, field)
        assert "美元" not in restored
        if field == "title":
            assert restored == "$\\pi$：用于扩散策略的强化学习"
        else:
            assert "$1.5$" in restored and "$2.2\\times$" in restored
    else:
        with pytest.raises(TranslationError, match=re.escape(error)):
            check_translation(source_text, answer, ZH, field)


def test_a_title_that_is_only_a_name_may_stay_as_it_is():
    assert check_translation(protect("FedQHD"), "FedQHD", ZH, "title") == "FedQHD"


@pytest.mark.parametrize(
    ("content", "ids"),
    [
        ('{"translations": [{"id": "a", "title": "x", "abstract": "y"}]}', ["a"]),
        ('```json\n{"translations": [{"id": "a", "title": "x", "abstract": "y"}]}\n```', ["a"]),
        ('<think>Let me see.</think>\n[{"id": "b", "title": "x", "abstract": "y"}]', ["b"]),
        ('[{"id": "a"}, "junk", {"no": "id"}]', ["a"]),
    ],
)
def test_parse_answer(content, ids):
    assert list(parse_answer(content)) == ids


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("Sure! 这是翻译", "not JSON"),
        ('{"papers": []}', 'no "translations" list'),
        ("", "not JSON"),
    ],
)
def test_parse_answer_rejects(content, error):
    with pytest.raises(ValueError, match=error):
        parse_answer(content)


def test_retry_after_takes_seconds_and_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_ten = format_datetime(utcnow() + timedelta(seconds=10), usegmt=True)
    assert 8 <= retry_after_seconds(in_ten) <= 10


# --- the openai backend over HTTP ---


def run(backend, papers=SAMPLE, concurrency=1):
    batches = list(translate_papers(backend, papers, ZH, concurrency))
    return {o.paper.arxiv_id: o for batch in batches for o in batch}


def test_translates_several_papers_per_request_with_tex_and_urls_intact(chat_server):
    papers = SAMPLE + [source(i) for i in TEX_PAPERS]
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), papers)
    assert all(o.error is None for o in outcomes.values()), outcomes
    assert len(chat_server.requests) == 3  # 11 papers, 4 per request
    assert sorted(chat_server.id_counts().values()) == [1] * 11
    assert sum(o.tokens for o in outcomes.values()) == 3 * TOKENS_PER_REQUEST
    assert (
        "$1.5$" in outcomes["2605.29032"].abstract
        and "$2.2\\times$" in outcomes["2605.29032"].abstract
    )
    assert "美元" not in outcomes["2605.29032"].abstract
    assert "\\cite{shenfeld2025rl}" in outcomes["2605.28860"].abstract
    assert re.search(r"\\textbf\{[^}]*\}", outcomes["2605.28842"].abstract)
    assert outcomes["2605.28828"].title == "微观宏观检索:减少大型语言模型中的长形幻觉"
    first = chat_server.requests[0]
    assert first.body["model"] == "test-model" and first.body["temperature"] == 0
    assert first.headers["Authorization"] == "Bearer sk-test"
    # TeX and URLs never reach the model.
    for request in chat_server.requests:
        for paper in request.papers:
            assert "$" not in paper["abstract"] and "\\" not in paper["abstract"]


def test_glossary_terms_of_the_batch_are_in_the_prompt(chat_server):
    run(
        OpenAIBackend(backend_settings(chat_server.url, TRANSLATION_BATCH_SIZE=1)),
        [source("2605.29009"), source("2605.29003")],
    )
    by_id = {r.ids[0]: r.system for r in chat_server.requests}
    assert "reward hacking → 奖励投机" in by_id["2605.29009v1"]
    assert "reinforcement learning → 强化学习" in by_id["2605.29009v1"]
    assert "奖励投机" not in by_id["2605.29003v1"]  # not in that paper: not sent


def test_no_api_key_sends_no_authorization(chat_server):
    run(OpenAIBackend(backend_settings(chat_server.url, OPENAI_API_KEY=None)), SAMPLE[:1])
    assert "Authorization" not in chat_server.requests[0].headers


def test_429_honours_retry_after(chat_server):
    chat_server.script = [lambda r: Reply(429, {"error": "slow down"}, {"Retry-After": "1"})]
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE[:2])
    assert all(o.error is None for o in outcomes.values())
    first, second = chat_server.requests
    assert second.at - first.at >= 0.95


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried(chat_server, status):
    chat_server.script = [lambda r: Reply(status, "upstream trouble")] * 2
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE[:2])
    assert all(o.error is None for o in outcomes.values())
    assert len(chat_server.requests) == 3


def test_a_slow_response_times_out_and_is_retried(chat_server):
    chat_server.script = [lambda r: Reply(body=answer(r).body, delay=1.5)]
    started = time.monotonic()
    outcomes = run(
        OpenAIBackend(backend_settings(chat_server.url, TRANSLATION_TIMEOUT=0.3)), SAMPLE[:2]
    )
    assert all(o.error is None for o in outcomes.values())
    assert len(chat_server.requests) == 2
    assert time.monotonic() - started < 1.4


def test_always_slow_fails_with_the_reason(chat_server):
    chat_server.respond = lambda r: Reply(body=answer(r).body, delay=1.0)
    outcomes = run(
        OpenAIBackend(
            backend_settings(chat_server.url, TRANSLATION_TIMEOUT=0.2, TRANSLATION_RETRIES=1)
        ),
        SAMPLE[:2],
    )
    assert {o.error for o in outcomes.values()} == {
        "endpoint unavailable after 2 attempts: no answer within 0.2 s"
    }


@pytest.mark.parametrize(
    "bad",
    [
        lambda r: Reply(body=completion("I'm sorry, I can't help with that.")),
        lambda r: Reply(body="<html>gateway</html>"),
        lambda r: Reply(body={"choices": []}),
        lambda r: Reply(body=completion('{"translations": [')),
    ],
    ids=["prose", "not-json-body", "no-choices", "truncated-json"],
)
def test_malformed_output_is_asked_again(chat_server, bad):
    chat_server.script = [bad]
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE[:2])
    assert all(o.error is None for o in outcomes.values())
    assert [len(r.ids) for r in chat_server.requests] == [2, 2]


def drop_first_placeholder(item: dict) -> dict:
    return {**item, "abstract": PLACEHOLDER.sub("", item["abstract"], count=1)}


def test_a_lost_placeholder_is_asked_again_for_that_paper_only(chat_server):
    papers = [source("2605.29032"), source("2605.28828")]
    chat_server.script = [
        lambda r: answer(
            r, lambda item: drop_first_placeholder(item) if item["id"] == "2605.29032v1" else item
        )
    ]
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), papers)
    assert all(o.error is None for o in outcomes.values())
    assert [r.ids for r in chat_server.requests] == [
        ["2605.29032v1", "2605.28828v1"],
        ["2605.29032v1"],
    ]
    assert "$1.5$" in outcomes["2605.29032"].abstract


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (drop_first_placeholder, "abstract: placeholder(s) ⟦0⟧ lost"),
        (
            lambda item: {**item, "abstract": "Here is the translation:\n" + item["abstract"]},
            "commentary",
        ),
        (lambda item: {**item, "title": "```" + item["title"] + "```"}, "Markdown fence"),
        (lambda item: {k: v for k, v in item.items() if k != "abstract"}, "abstract: empty"),
        (lambda item: {**item, "id": "someone-else"}, "missing from the answer"),
    ],
    ids=["lost-placeholder", "commentary", "fence", "no-abstract", "wrong-id"],
)
def test_a_paper_always_answered_badly_stays_english(chat_server, edit, error):
    chat_server.respond = lambda r: answer(r, edit)
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), [source("2605.29032")])
    outcome = outcomes["2605.29032"]
    assert outcome.title is None and outcome.abstract is None
    assert error in outcome.error
    assert len(chat_server.requests) == 3  # MAX_ATTEMPTS
    assert outcome.tokens == 3 * TOKENS_PER_REQUEST


def test_endpoint_down_fails_fast_for_every_paper():
    config = backend_settings(f"http://127.0.0.1:{free_port()}/v1")
    started = time.monotonic()
    outcomes = run(OpenAIBackend(config), SAMPLE, concurrency=2)
    assert time.monotonic() - started < 5
    assert len(outcomes) == 8
    assert all(
        o.error.startswith("endpoint unavailable after 3 attempts: cannot reach")
        for o in outcomes.values()
    )


def test_a_refusing_endpoint_is_not_retried(chat_server):
    chat_server.respond = lambda r: Reply(401, {"error": {"message": "invalid api key"}})
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE)
    assert len(chat_server.requests) == 1  # the other batches do not even try
    assert all("HTTP 401" in o.error for o in outcomes.values())


def test_a_rejected_request_fails_only_its_batch(chat_server):
    chat_server.script = [lambda r: Reply(400, {"error": {"message": "context length exceeded"}})]
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE)
    assert len(chat_server.requests) == 2  # not retried, and the endpoint is still used
    failed = [o for o in outcomes.values() if o.error]
    assert len(failed) == 4 and all(
        "HTTP 400" in o.error and "context length" in o.error for o in failed
    )


def test_a_long_retry_after_counts_as_down(chat_server):
    chat_server.respond = lambda r: Reply(429, "quota", {"Retry-After": "3600"})
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE)
    assert len(chat_server.requests) == 1
    assert all(
        o.error.endswith(
            "HTTP 429 from " + chat_server.url + "/chat/completions, Retry-After 3600 s"
        )
        for o in outcomes.values()
    )


def test_no_retry_waits_past_the_deadline(chat_server):
    chat_server.respond = lambda r: Reply(503, "upstream trouble")
    config = backend_settings(chat_server.url, TRANSLATION_RETRY_BACKOFF=2.0)
    backend = OpenAIBackend(config, stop_at=utcnow() + timedelta(seconds=0.5))
    started = time.monotonic()
    outcomes = run(backend, SAMPLE[:2])
    assert time.monotonic() - started < 0.5  # the 1-3 s backoff would end past it: no wait
    assert len(chat_server.requests) == 1
    assert {o.error for o in outcomes.values()} == {
        "translation deadline passed (last error: HTTP 503 from "
        + chat_server.url
        + "/chat/completions)"
    }


def test_concurrency_is_limited(chat_server):
    chat_server.respond = lambda r: Reply(
        body=answer(r).body, delay=0.6
    )  # long enough to overlap on a loaded machine
    backend = OpenAIBackend(backend_settings(chat_server.url, TRANSLATION_BATCH_SIZE=1))
    outcomes = run(backend, SAMPLE, concurrency=3)
    assert all(o.error is None for o in outcomes.values())
    assert chat_server.max_in_flight == 3


def test_requests_per_minute_is_limited(chat_server):
    backend = OpenAIBackend(
        backend_settings(
            chat_server.url, TRANSLATION_BATCH_SIZE=1, TRANSLATION_REQUESTS_PER_MINUTE=600
        )
    )
    # When the limiter lets each request go, not when the server sees it: on a
    # busy machine a thread's send can lag its turn and bunch up arrivals.
    released = []
    limit = backend.limiter.wait

    def wait_and_record():
        limit()
        released.append(time.monotonic())

    backend.limiter.wait = wait_and_record
    start = time.monotonic()
    run(backend, SAMPLE[:4], concurrency=4)
    assert len(chat_server.requests) == 4
    # The k-th request may go no earlier than k intervals (0.1 s at 600 a minute) after the start.
    assert all(at - start >= 0.1 * k for k, at in enumerate(sorted(released)))


def test_token_budget_stops_with_one_log_line(chat_server, caplog):
    budget = TokenBudget(limit=2 * TOKENS_PER_REQUEST)
    backend = OpenAIBackend(backend_settings(chat_server.url), budget)
    with caplog.at_level(logging.WARNING, logger="worker.translation.limits"):
        outcomes = run(backend, SAMPLE + [source(i) for i in TEX_PAPERS])
    assert len(chat_server.requests) == 2
    done = [o for o in outcomes.values() if o.error is None]
    assert len(done) == 8
    assert {o.error for o in outcomes.values() if o.error} == {"daily token budget reached"}
    lines = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert lines == [
        "translation: daily token budget reached (300 of 300 tokens used today, "
        "TRANSLATION_DAILY_TOKEN_BUDGET); the remaining papers stay English-only"
    ]


def test_usage_missing_is_estimated(chat_server):
    chat_server.respond = lambda r: Reply(body={**answer(r).body, "usage": None})
    outcomes = run(OpenAIBackend(backend_settings(chat_server.url)), SAMPLE[:1])
    assert outcomes[SAMPLE[0].arxiv_id].tokens > 300


def test_recorded_backend_answers_without_network():
    outcomes = run(RecordedBackend(), SAMPLE[:2] + [SourcePaper("2401.00001", 1, "T", "A")])
    assert outcomes["2605.28828"].title == RECORDED["2605.28828"]["zh"]["title"]
    assert outcomes["2401.00001"].error == "no recorded translation"


# --- the day's job, on the database ---


def store_sample_day(session, completed_minutes_ago: int = 5) -> None:
    for record in DEMO["papers"]:
        session.add(
            Paper(
                arxiv_id=record["arxiv_id"],
                version=record["version"],
                title=record["title"],
                authors=record["authors"],
                categories=record["categories"],
                abstract=record["abstract"],
                listing_date=DEMO_DATE,
                announce_type=AnnounceType(record["announce_type"]),
            )
        )
    session.add(
        ListingDay(
            listing_date=DEMO_DATE, completed_at=utcnow() - timedelta(minutes=completed_minutes_ago)
        )
    )
    session.commit()


def add_subscriber(
    session,
    number: int,
    lines: list[str],
    language="en+zh",
    status=SubscriberStatus.CONFIRMED,
    replacements=False,
):
    email = f"reader{number}@example.org"
    subscriber = Subscriber(
        email=email,
        email_key=email,
        status=status,
        language=language,
        include_replacements=replacements,
        keywords=[Keyword(position=i, text=line) for i, line in enumerate(lines)],
    )
    session.add(subscriber)
    return subscriber


POOL = [
    "large language model",
    "diffusion policy",
    "robot",
    "world model",
    "reward model",
    "multi-agent",
    "offline",
    "federated",
    "minimax",
    "cat:cs.RO",
]
ENGLISH_ONLY_LINE = "cat:eess.SY"


def translated_ids(session) -> set[str]:
    return {
        t.arxiv_id
        for t in session.scalars(
            select(Translation).where(Translation.status == TranslationStatus.DONE)
        )
    }


@pytest.fixture
def openai_settings(config, chat_server):
    config.update(settings(chat_server.url))
    return config


def test_thousand_bilingual_subscribers_each_needed_paper_translated_once(
    openai_settings, app, chat_server
):
    session = db.session()
    store_sample_day(session)
    for n in range(1000):
        add_subscriber(session, n, [POOL[n % 10], POOL[(3 * n + 1) % 10]])
    add_subscriber(session, 1000, [ENGLISH_ONLY_LINE], language="en")
    add_subscriber(session, 1001, [ENGLISH_ONLY_LINE], status=SubscriberStatus.UNCONFIRMED)
    add_subscriber(session, 1002, [ENGLISH_ONLY_LINE], status=SubscriberStatus.PAUSED)
    session.commit()
    papers = [p for p in session.scalars(select(Paper))]
    matches = match_papers(papers, POOL + [ENGLISH_ONLY_LINE])
    needed = set().union(*(matches[line] for line in POOL))
    english_only = matches[ENGLISH_ONLY_LINE] - needed
    assert 25 < len(needed) < 66 and english_only  # the scenario tests something

    report = translate_day(session, app_settings(app), DEMO_DATE)

    assert (report.translated, report.reused, report.failed) == (len(needed), 0, 0)
    counts = chat_server.id_counts()
    assert set(counts) == {f"{i}v1" for i in needed}
    assert set(counts.values()) == {1}  # one request per paper-version, not per subscriber
    assert translated_ids(session) == needed
    assert report.tokens == len(chat_server.requests) * TOKENS_PER_REQUEST
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None
    fixed = session.scalars(select(Translation).where(Translation.arxiv_id == "2605.29032")).one()
    assert "$1.5$-$2.2\\times$" in RECORDED["2605.29032"]["abstract"]
    assert (
        "$1.5$" in fixed.abstract
        and "$2.2\\times$" in fixed.abstract
        and "美元" not in fixed.abstract
    )
    assert fixed.model == "test-model" and fixed.language == "zh"

    requests_before = len(chat_server.requests)
    again = translate_day(session, app_settings(app), DEMO_DATE)
    assert (again.translated, again.reused, again.failed, again.tokens) == (0, len(needed), 0, 0)
    assert len(chat_server.requests) == requests_before


def test_replacements_are_translated_only_for_subscribers_who_want_them(
    openai_settings, app, chat_server
):
    session = db.session()
    store_sample_day(session)
    replaced = session.get(
        Paper, session.scalar(select(Paper.id).where(Paper.arxiv_id == "2605.29032"))
    )
    replaced.announce_type = AnnounceType.REPLACE
    add_subscriber(session, 1, ["minimax"])
    session.commit()
    assert translate_day(session, app_settings(app), DEMO_DATE).translated == 0
    add_subscriber(session, 2, ["minimax"], replacements=True)
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert report.translated == 1 and translated_ids(session) == {"2605.29032"}


def test_new_version_is_translated_again(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["minimax"])
    session.commit()
    translate_day(session, app_settings(app), DEMO_DATE)
    paper = session.scalars(select(Paper).where(Paper.arxiv_id == "2605.29032")).one()
    paper.version = 2
    session.commit()
    assert translate_day(session, app_settings(app), DEMO_DATE).translated == 1
    assert [r.ids for r in chat_server.requests] == [["2605.29032v1"], ["2605.29032v2"]]


def test_endpoint_down_marks_papers_failed_and_the_day_translated(config, app):
    config_values = settings(f"http://127.0.0.1:{free_port()}/v1")
    replace_settings(app, **config_values)
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["reinforcement learning"])
    session.commit()
    started = time.monotonic()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert time.monotonic() - started < 10
    assert report.translated == 0 and report.failed > 50
    rows = session.scalars(select(Translation)).all()
    assert len(rows) == report.failed
    assert all(r.status is TranslationStatus.FAILED and "cannot reach" in r.error for r in rows)
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None


def test_failed_papers_are_tried_again_on_the_next_run(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["minimax"])
    session.commit()
    chat_server.respond = lambda r: answer(r, drop_first_placeholder)
    assert translate_day(session, app_settings(app), DEMO_DATE).failed == 1
    chat_server.respond = answer
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert (report.translated, report.failed) == (1, 0)
    row = session.scalars(select(Translation)).one()
    assert row.status is TranslationStatus.DONE and row.error is None
    assert row.tokens == 4 * TOKENS_PER_REQUEST  # three rejected asks and the good one


def test_budget_spent_earlier_today_counts(openai_settings, app, chat_server, caplog):
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["reinforcement learning"])
    session.add(
        Translation(
            arxiv_id="2401.00001",
            version=1,
            language="zh",
            status=TranslationStatus.DONE,
            tokens=1000,
        )
    )
    session.commit()
    replace_settings(app, TRANSLATION_DAILY_TOKEN_BUDGET=1000)
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert chat_server.requests == []
    assert report.translated == 0 and report.failed > 50
    assert "daily token budget reached (1000 of 1000" in caplog.text
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None


def test_past_the_deadline_the_job_gives_up_without_calls(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session, completed_minutes_ago=61)
    add_subscriber(session, 1, ["reinforcement learning"])
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert chat_server.requests == [] and report.translated == 0 and report.failed > 50
    assert session.scalars(select(Translation)).all() == []
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None


def test_backend_none_only_marks_the_day(config, app, chat_server):
    replace_settings(app, **settings(chat_server.url, TRANSLATION_BACKEND="none"))
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["reinforcement learning"])
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert (report.translated, report.failed) == (0, 0) and chat_server.requests == []
    assert session.get(ListingDay, DEMO_DATE).translated_at is not None


def test_recorded_backend_fills_the_demo_day(config, app):
    replace_settings(app, **settings("http://127.0.0.1:9/v1", TRANSLATION_BACKEND="recorded"))
    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["reinforcement learning", "diffusion policy"])
    session.commit()
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert (report.translated, report.failed) == (66, 0)
    row = session.scalars(select(Translation).where(Translation.arxiv_id == "2605.28828")).one()
    assert row.title == RECORDED["2605.28828"]["zh"]["title"] and row.model == "recorded"


def test_cli_prints_what_was_done(openai_settings, app, chat_server):
    session = db.session()
    store_sample_day(session, completed_minutes_ago=600)  # the deadline does not bind the operator
    add_subscriber(session, 1, ["minimax", "diffusion policy"])
    session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["translate"])
    assert result.exit_code == 0, result.output
    # stdout: the report; the progress lines go to stderr (tests/test_progress.py).
    assert (
        result.stdout
        == "2026-05-29: translated 3, reused from cache 0, failed 0, tokens used 150\n"
    )
    result = runner.invoke(main, ["translate", "--date", "2026-05-29"])
    assert (
        result.stdout == "2026-05-29: translated 0, reused from cache 3, failed 0, tokens used 0\n"
    )
    result = runner.invoke(main, ["translate", "--date", "29/05/2026"])
    assert result.exit_code != 0 and "must be a date like" in result.output


def test_cli_refuses_without_a_backend(config, app):
    replace_settings(app, TRANSLATION_BACKEND="none")
    result = app.test_cli_runner().invoke(main, ["translate"])
    assert result.exit_code != 0 and "TRANSLATION_BACKEND is none" in result.output


def test_job_is_idempotent(openai_settings, app, chat_server):
    from worker.jobs import translate_listing_date

    session = db.session()
    store_sample_day(session)
    add_subscriber(session, 1, ["minimax"])
    session.commit()
    assert translate_listing_date("2026-05-29") == (
        f"2026-05-29: translated 1, reused from cache 0, failed 0, tokens used {TOKENS_PER_REQUEST}"
    )
    assert translate_listing_date("2026-05-29").endswith(
        "translated 0, reused from cache 1, failed 0, tokens used 0"
    )
    assert len(chat_server.requests) == 1


# --- end to end: translation never keeps a digest back past the deadline ---


def bilingual_and_english_readers(session) -> int:
    for n in range(20):
        add_subscriber(session, n, [POOL[n % 5], "reinforcement learning"])
    for n in range(20, 25):
        add_subscriber(session, n, ["diffusion policy"], language="en")
    session.commit()
    return 25


def test_with_the_endpoint_down_every_digest_still_goes_out(config, app, outbox):
    from worker.delivery.dispatch import dispatch_digests

    replace_settings(app, **settings(f"http://127.0.0.1:{free_port()}/v1"))
    session = db.session()
    store_sample_day(session)
    readers = bilingual_and_english_readers(session)

    held = dispatch_digests(DEMO_DATE, utcnow(), send_now=True)
    assert held.held == 20 and len(outbox.messages()) == 5  # English goes at once

    report = translate_day(session, app_settings(app), DEMO_DATE)  # gives up quickly
    assert report.translated == 0 and report.failed > 50
    summary = dispatch_digests(DEMO_DATE, utcnow(), send_now=True)
    assert summary.held == 0
    messages = outbox.messages()
    assert len(messages) == readers
    bilingual = [
        m
        for m in messages
        # The note in the bilingual readers' 简体中文 chrome.
        if "今天暂无简体中文译文。" in m.get_body(("plain",)).get_content()
    ]
    assert len(bilingual) == 20


def test_a_translation_job_that_never_finishes_holds_digests_only_until_the_deadline(
    openai_settings, app, outbox
):
    from worker.delivery.dispatch import dispatch_digests

    session = db.session()
    store_sample_day(session, completed_minutes_ago=0)
    readers = bilingual_and_english_readers(session)
    completed_at = session.get(ListingDay, DEMO_DATE).completed_at

    assert (
        dispatch_digests(DEMO_DATE, completed_at + timedelta(minutes=59), send_now=True).held == 20
    )
    assert len(outbox.messages()) == 5
    summary = dispatch_digests(DEMO_DATE, completed_at + timedelta(minutes=60), send_now=True)
    assert summary.held == 0 and len(outbox.messages()) == readers


def test_translated_digests_show_the_chinese_and_english_ones_do_not(
    openai_settings, app, outbox, chat_server
):
    from worker.delivery.dispatch import dispatch_digests

    session = db.session()
    store_sample_day(session)
    readers = bilingual_and_english_readers(session)
    report = translate_day(session, app_settings(app), DEMO_DATE)
    assert report.failed == 0 and report.translated > 30
    dispatch_digests(DEMO_DATE, utcnow(), send_now=True)
    texts = {
        m["To"].addresses[0].addr_spec: m.get_body(("plain",)).get_content()
        for m in outbox.messages()
    }
    assert len(texts) == readers
    llm_reader = texts["reader0@example.org"]  # "large language model": has 2605.28828
    assert "微观宏观检索" in llm_reader and "translation not available" not in llm_reader
    assert all("美元" not in text for text in texts.values())  # the sample's TeX-as-dollars defect
    assert all("微观宏观检索" not in texts[f"reader{n}@example.org"] for n in range(20, 25))
