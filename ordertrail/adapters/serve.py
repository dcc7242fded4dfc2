"""``ordertrail serve``: the HTTP service (Litestar under uvicorn) with its projection
workers and process managers in the same process.

``--demo`` prepares a fresh embedded store with the demo scenario's history (a tea shop's
afternoon, dated in the last hour), turns on development tokens and prints one token per
role, so that the API can be tried with curl at once.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.demo import SimulatedClock, fresh_demo_dir, run_scenario
from ordertrail.adapters.settings import Settings
from ordertrail.application.context import CommandContext
from ordertrail.application.knowledge import DraftArticle, PublishArticle
from ordertrail.domain import Actor
from ordertrail.domain.aftersales import CaseReason

DEMO_ARTICLES = (
    DraftArticle(
        "Dented or cracked tea tins",
        "Ask for a photo of the tin and its lid. If the tea is sealed and dry, offer a "
        "replacement tin; otherwise approve the return and refund on inspection.",
        ("packaging", "damage"),
        "tea",
        (CaseReason.QUALITY_PROBLEM, CaseReason.NOT_AS_DESCRIBED),
    ),
    DraftArticle(
        "Wrong teaware sent",
        "Check the SKU on the packing slip against the order. Approve an exchange and "
        "send the right piece at once; the wrong one comes back with the courier.",
        ("teaware", "picking"),
        "teaware",
        (CaseReason.WRONG_ITEM,),
    ),
)
DEMO_TOKENS = (("customer", "li-lei"), ("staff", "mei"), ("auditor", "audit-1"))


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="run the HTTP API with its projection workers (uvicorn)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--database-url", default="", help="the store (default: ORDERTRAIL_DATABASE_URL)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="serve a fresh embedded store holding the demo history, with development tokens",
    )
    serve.add_argument(
        "--data-dir", default="var/serve", help="directory of the demo's SQLite store"
    )
    serve.set_defaults(run=run_serve)


def prepare_demo_store(data_dir: Path, settings: Settings) -> Settings:
    """A fresh SQLite store in ``data_dir`` holding the demo scenario's history."""
    demo = replace(settings, database_url=f"sqlite://{fresh_demo_dir(data_dir)}")
    clock = SimulatedClock()
    # The scenario lets the payment window pass once; start it far enough in the past
    # that its whole history lies before the service's first event.
    clock.advance(-(demo.config.payment_window + timedelta(minutes=5)))
    with open_ordertrail(demo, clock=clock) as ot:
        run_scenario(ot, clock, lambda line: print(f"  demo: {line}"))
        for article in DEMO_ARTICLES:
            drafted = ot.knowledge.draft_article(article, _staff()).value
            ot.knowledge.publish_article(PublishArticle(drafted.article_id), _staff())
        print(f"  demo: {len(DEMO_ARTICLES)} knowledge-base articles published.")
    return demo


def _staff() -> CommandContext:
    """A new command (its own id) by a member of staff."""
    return CommandContext(actor=Actor.of("staff", "mei"))


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - the API extra is only needed to serve

    from ordertrail.adapters.http.app import create_app  # noqa: PLC0415
    from ordertrail.adapters.http.auth import Role, issue_token  # noqa: PLC0415
    from ordertrail.adapters.http.config import ApiSettings  # noqa: PLC0415
    from ordertrail.adapters.http.runtime import new_auth  # noqa: PLC0415

    api = ApiSettings.from_env()
    store = api.store
    if args.database_url:
        store = replace(store, database_url=args.database_url)
    if args.demo:
        if not args.database_url:
            store = prepare_demo_store(Path(args.data_dir), store)
        api = replace(api, store=store, dev_tokens=True, seed_demo=bool(args.database_url))
    else:
        api = replace(api, store=store)
    base = f"http://{args.host}:{args.port}"
    print(f"ordertrail on {store.backend}; API {base}, docs {base}/schema", flush=True)
    if api.dev_tokens:
        auth = new_auth(api)
        print("development tokens (Authorization: Bearer ...):")
        for role, subject in DEMO_TOKENS:
            print(f"  {role:<8} {subject:<8} {issue_token(auth, Role(role), subject)}")
    uvicorn.run(create_app(api), host=args.host, port=args.port, log_level="info")
    return 0
