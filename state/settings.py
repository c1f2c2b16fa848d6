"""One settings object per process, read from `ATTIMO_*` environment variables.

Library code never reads the environment: entry points build `Settings()`
once and pass the values down, so tests can run with seconds where
production runs with days.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_ORIGINS = "http://127.0.0.1:8000,http://localhost:8000"


class Settings(BaseSettings):
    """Everything an Attimo process can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="ATTIMO_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # fsync policy of the private Redis `attimo run` starts: "everysec" may lose the
    # last second of acked events if the host crashes; "always" loses none, slower.
    redis_appendfsync: Literal["always", "everysec"] = "everysec"
    host: str = "127.0.0.1"
    api_port: int = 8000
    # The API's HTTP hardening: a request head (request line + headers) must arrive
    # whole within this time and be at most this large, or the connection is closed
    # (408 / 431); idle keep-alive connections keep uvicorn's own 5 s. Past the
    # connection limit a new connection takes the place of the one waiting longest
    # for its head; keep the limit below the process's open-files limit (ulimit -n).
    http_head_timeout_s: float = 10.0
    http_max_head_bytes: int = 16 * 1024
    http_max_connections: int = 10_000
    gateway_port: int = 8001
    admin_token: str = Field(default_factory=lambda: "dev-admin-" + secrets.token_hex(8))
    write_key: str = Field(default_factory=lambda: "dev-wk-" + secrets.token_hex(8))
    allowed_origins: str = LOCAL_ORIGINS
    # Public URLs the browser uses; empty means "derived from host and port".
    gateway_public_url: str = ""
    api_public_url: str = ""

    # Streams: the shard count is fixed for the lifetime of a deployment
    # (removing a shard breaks Bytewax resume), so choose a multiple of the
    # dataflow process count.
    stream_shards: int = Field(default=4, ge=1)
    # Virtual shards the dataflow keys contact state by: bounded, so Bytewax
    # recovery and timer scans stay cheap however many contacts exist.
    contact_shards: int = Field(default=256, ge=1)

    # Ingest limits (Segment's own: 32 KB per event, 500 KB per batch).
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 512 * 1024
    max_events_per_batch: int = 100
    max_future_skew_s: float = 24 * 3600
    max_event_age_s: float = 365 * 24 * 3600
    # Ingest pushes back (429 / ack withheld) when the dataflow lags more.
    max_ingest_lag_s: float = 30.0
    # Longest the gateway withholds an ack while overloaded before closing
    # with 1013 (try again later) so the client resends the frame.
    max_ack_delay_s: float = 10.0
    # How often ingest re-measures the dataflow's lag (one round trip over every shard).
    lag_check_interval_s: float = 0.25

    # Redis waits of the API and gateway: a hung Redis ends in 503 / close 1011, not a stuck request.
    redis_timeout_s: float = 5.0
    # Write keys are checked on every frame and request through a cache: a revoked key stops
    # working within the TTL; unknown keys are remembered briefly; the cache is bounded.
    write_key_cache_ttl_s: float = 5.0
    write_key_negative_ttl_s: float = 1.0
    write_key_cache_max: int = 10_000
    # A gateway socket is learnt under at most this many visitor ids (for decision pushes).
    gateway_max_ids_per_socket: int = 16
    # Rate limits (`api.rate_limits`, per process; 0 = off), counted per frame / request. Ingest: events
    # per second and burst per write key (a busy shop's whole traffic) and per client IP (a NAT shares
    # one IP among many browsers; the tracker itself sends at most 10/s). Decisions reads: requests per
    # IP. A websocket sending `rate_limit_ws_strikes` frames in a row over its limit is closed (4429).
    # `trusted_proxies`: comma-separated addresses / CIDRs whose X-Forwarded-For names the client.
    rate_limit_key_per_s: float = Field(default=2000.0, ge=0)
    rate_limit_key_burst: float = Field(default=10_000.0, ge=0)
    rate_limit_ip_per_s: float = Field(default=200.0, ge=0)
    rate_limit_ip_burst: float = Field(default=1000.0, ge=0)
    rate_limit_reads_per_s: float = Field(default=50.0, ge=0)
    rate_limit_reads_burst: float = Field(default=200.0, ge=0)
    rate_limit_max_clients: int = Field(default=100_000, ge=1)
    rate_limit_ws_strikes: int = Field(default=3, ge=1)
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """Refused at start-up, naming the entry, rather than on the first request."""
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network") from exc
        return value

    # Events from known bots (`api.bots`: the user agent of a browser connection or of the event's
    # context) are acked and dropped at ingest, never reaching the dataflow; true keeps them.
    accept_bots: bool = False

    # Dataflow
    data_dir: Path = Path("var")
    recovery: bool = True
    snapshot_interval_s: float = 10.0
    backup_interval_s: float = 0.0
    workers: int = 1
    idle_poll_ms: float = 1.0
    # Contacts the dataflow keeps decoded (the rest stay msgpack-encoded, ~600 B each).
    hot_contacts: int = 16_384
    # A cart untouched this long counts as abandoned (30 min by default).
    cart_idle_s: float = 30 * 60
    # Events each contact keeps for the explorer's timeline (the profile's `recent_events`); 0: none.
    event_log_size: int = Field(default=30, ge=0, le=1000)
    # Exactly-once against resends: each contact remembers the message ids it
    # applied for this long and this many (twice the tracker's 1 000-event queue).
    dedup_window_s: float = 48 * 3600.0
    dedup_max_ids: int = 2000
    # What a dataflow step could not take is kept this long, at most this many.
    quarantine_max: int = 100_000
    quarantine_retention_s: float = 30 * 86_400.0
    # Privacy (README "Privacy: erase, export, retention"). Raw events older than this are trimmed from
    # the ingest streams (never ahead of what the dataflow has snapshotted); None: only that rule.
    event_retention_s: float | None = Field(default=None, gt=0)
    # At ingest: `context.ip` loses its last IPv4 octet / last 80 IPv6 bits; `context.userAgent` is dropped.
    anonymize_ip: bool = False
    keep_user_agent: bool = True

    # Delivery of workflow actions (`attimo dispatcher`). Actions wait in `outbox_shards` streams
    # sharded by contact (fixed for a deployment, like `stream_shards`); each shard is delivered
    # by one dispatcher at a time, which holds a lease of `dispatcher_lease_s` on it (renewed
    # every quarter of it) and starts an attempt only while the lease outlasts the attempt's
    # timeout, so two dispatchers never send one action at once. Every attempt (webhook or
    # e-mail) is cut off after `webhook_timeout_s`. Failed attempts are retried after the
    # delays of `webhook_retry_schedule` ("5s,5m,30m,2h,…"; units s, m, h, d), each stretched or
    # shrunk at random by up to `webhook_retry_jitter`; after the last one the action is
    # dead-lettered (kept `dead_letter_retention_s`). An endpoint failing without a success
    # for `webhook_disable_after_s` is disabled; a rotated secret keeps signing for
    # `webhook_secret_grace_s`. Webhook URLs resolving to private, loopback or link-local
    # addresses are refused unless inside one of `webhook_allowed_networks` (comma-separated
    # CIDRs, e.g. "127.0.0.1/32" for a receiver on the same host). `dispatcher_concurrency`
    # bounds attempts in flight per process; `dispatcher_readahead` bounds the actions of one
    # shard held in memory (waiting behind a contact's retrying action, or due).
    outbox_shards: int = Field(default=4, ge=1)
    webhook_timeout_s: float = 15.0
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,14h,20h,24h,24h"
    webhook_retry_jitter: float = 0.1
    webhook_disable_after_s: float = 5 * 86_400.0
    webhook_secret_grace_s: float = 86_400.0
    webhook_allowed_networks: str = ""
    dead_letter_retention_s: float = 30 * 86_400.0
    dispatcher_lease_s: float = 30.0
    dispatcher_concurrency: int = 64
    dispatcher_readahead: int = 20_000

    # E-mail Attimo sends itself (workflow e-mail actions) through this SMTP server; an empty
    # host means none is configured and e-mail actions fail permanently, naming this setting.
    # TLS: "starttls" upgrades a plain connection (usually port 587) and refuses a server that
    # cannot; "implicit" speaks TLS from the first byte (usually 465); "none" only for a relay
    # on a trusted network. Certificates are always verified. The timeout bounds the whole
    # exchange, connect to the last reply. `smtp_from` is the From header ("Shop <news@shop.example>"),
    # whose domain also ends every Message-ID.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: Literal["none", "starttls", "implicit"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_timeout_s: float = 15.0
    # Signs the open-pixel, click and unsubscribe links in e-mails (HMAC-SHA256). Empty: derived
    # from the admin token, so it works with no set-up, but rotating the token then breaks the
    # links in e-mails already sent; set it explicitly in production. Several, comma-separated:
    # the first signs, any verifies (rotation without breaking old links).
    email_link_secret: str = ""

    # Identity verification for decisions: the shop's back end signs a user id with one of these
    # secrets (hex HMAC-SHA256 of the user id) and the page passes it as `sig`; decisions of a
    # contact with a user id are served only with a valid one. Comma-separated: any verifies, so a
    # secret is rotated by adding the new one, moving the back end to it, then removing the old.
    # Empty: no user's decisions are served (anonymous visitors' still are).
    identity_secrets: str = ""
    # Verified identity at ingest (README "Keys, tokens and verified identity"): a browser event's
    # userId is believed only with `context.userHash` (the signature above, or its site's), or
    # when the write key trusts browser identity. This is the default for keys that do not say;
    # the dev key ATTIMO_WRITE_KEY says `write_key_trusts_identity` (on: local runs, the demo shop
    # and the tests identify without signatures; sites made through the admin API are strict).
    trust_browser_identity: bool = False
    write_key_trusts_identity: bool = True
    # A rotated write key keeps working this long, so pages and back ends can move to the new one.
    key_rotation_grace_s: float = Field(default=86_400.0, ge=0)

    # Each API / gateway process keeps the products' documents (neighbours, trending) it read for
    # this long, at most this many, so a decisions read moves only the contact's own document:
    # recommendations a process answers may be this much older than Redis's (0: read every time).
    decisions_hold_s: float = 1.0
    decisions_max_held: int = 20_000

    # Recommendations (the products stage). Products viewed by a contact within `recs_view_window_s`
    # were viewed together; added or bought within `recs_basket_window_s`, bought together. A contact
    # counts at most `recs_max_interactions` per basket window; each product keeps its best
    # `recs_neighbours` by log-likelihood ratio (at least `recs_min_llr`), interactions losing half
    # their weight every `recs_half_life_s`. Documents of changed products are rewritten every
    # `recs_refresh_s`, listing `recs_doc_size` products per list; `recs_trending_size` trending.
    # `product_shards` is fixed for a deployment, like `contact_shards`. Off: no products stage.
    recommendations: bool = True
    product_shards: int = Field(default=2, ge=1)
    recs_view_window_s: float = 30 * 60.0
    recs_basket_window_s: float = 86_400.0
    recs_max_interactions: int = 500
    recs_neighbours: int = 50
    recs_min_llr: float = 1.0
    recs_half_life_s: float = 7 * 86_400.0
    recs_refresh_s: float = 1.0
    recs_doc_size: int = 10
    recs_trending_size: int = 50

    # The operators' dashboard. One API process at a time (a Redis lease) sends a heartbeat event
    # through the gateway every `heartbeat_interval_s` (0 = off) and times it until the dataflow has
    # processed it; one not seen within `heartbeat_lost_after_s` counts as lost. The dashboard shows a
    # banner while the dataflow lags more than `alert_lag_s` or the heartbeat's p99 over the last
    # minute passes `alert_latency_p99_s`; visitors count as active for `active_window_s` after an event
    # (0: the dataflow keeps no active set — the dashboard then shows none; what the benchmarks' "off" uses).
    heartbeat_interval_s: float = Field(default=1.0, ge=0)
    heartbeat_lost_after_s: float = Field(default=10.0, gt=0)
    alert_lag_s: float = Field(default=5.0, gt=0)
    alert_latency_p99_s: float = Field(default=2.0, gt=0)
    active_window_s: float = Field(default=300.0, ge=0)

    # RFM quintile edges are recomputed from up to this many profiles this often (0 = never).
    rfm_refresh_s: float = 3600.0
    rfm_sample: int = 100_000

    # Observability. Prometheus `/metrics` of the processes without an HTTP port of their own, each on
    # its own port (0 = off): the gateway, the dispatcher, and the dataflow, where process `-i N` of a
    # cluster serves on `dataflow_metrics_port + N`. The API serves `/metrics` on its own port.
    # `/readyz` and `attimo status` report ready while the dataflow lags less than `ready_max_lag_s`
    # and, unless `ready_require_dispatcher` is off (no webhooks / e-mails delivered), a dispatcher runs.
    gateway_metrics_port: int = Field(default=9201, ge=0, le=65535)
    dispatcher_metrics_port: int = Field(default=9202, ge=0, le=65535)
    dataflow_metrics_port: int = Field(default=9210, ge=0, le=65535)
    ready_max_lag_s: float = Field(default=5.0, gt=0)
    ready_require_dispatcher: bool = True

    # Demo shoppers for `attimo demo`.
    demo_shoppers: int = 20

    @property
    def origins(self) -> list[str]:
        """Allowed origins for the default write key: the configured ones plus the API's own.

        The demo shop is served by the API, so its origin is always allowed,
        whatever port the API runs on.
        """
        configured = [o.strip() for o in self.allowed_origins.split(",") if o.strip()]
        own = [self.api_url.rstrip("/")]
        if self.host in ("127.0.0.1", "localhost"):
            own += [f"http://127.0.0.1:{self.api_port}", f"http://localhost:{self.api_port}"]
        return list(dict.fromkeys(configured + own))

    @property
    def gateway_url(self) -> str:
        """Websocket URL browsers use to reach the gateway."""
        return self.gateway_public_url or f"ws://{self.host}:{self.gateway_port}"

    @property
    def api_url(self) -> str:
        """HTTP URL browsers and clients use to reach the API."""
        return self.api_public_url or f"http://{self.host}:{self.api_port}"
