"""Every Redis key and channel name Attimo uses; nothing else spells a key.

Per-contact keys carry the contact id in a `{…}` hash tag so that a Redis
Cluster keeps all of one contact's keys on one node.
"""

from __future__ import annotations

PREFIX = "attimo"


def event_stream(shard: int) -> str:
    """The ingest stream of one shard."""
    return f"{PREFIX}:events:{shard}"


def contact_profile(contact_id: str) -> str:
    """The contact's profile (JSON), written by the dataflow, read by the API."""
    return f"{PREFIX}:contact:{{{contact_id}}}"


def contact_alias(any_id: str) -> str:
    """Maps an anonymous id, user id or e-mail to the contact id that owns it."""
    return f"{PREFIX}:alias:{{{any_id}}}"


def write_key(key: str) -> str:
    """The write key's record (allowed origins); a secret key's is named by its SHA-256 (`state.writekeys`)."""
    return f"{PREFIX}:writekey:{key}"


def write_key_index() -> str:
    """Hash key id → the name its record is filed under (`write_key`): the admin API's list of keys."""
    return f"{PREFIX}:writekeys"


def sites() -> str:
    """Hash site id → the site's record (name, identity secret, default trust) (`state.sites`)."""
    return f"{PREFIX}:sites"


def admin_token(digest: str) -> str:
    """String → an admin token's record (scopes), named by the token's SHA-256: the token is never stored."""
    return f"{PREFIX}:admintoken:{digest}"


def admin_token_index() -> str:
    """Hash token id → its SHA-256 (`admin_token`): the admin API's list of tokens."""
    return f"{PREFIX}:admintokens"


def dataflow_progress() -> str:
    """Hash shard → last stream entry id the dataflow has processed."""
    return f"{PREFIX}:progress"


def dataflow_heartbeat() -> str:
    """Last time (epoch seconds) the dataflow reported it was alive."""
    return f"{PREFIX}:heartbeat:dataflow"


def decision_push_channel() -> str:
    """Pub/sub channel on which the dataflow pushes decisions to gateways."""
    return f"{PREFIX}:push"


def config_version(version: int) -> str:
    """One immutable version of the live configuration (JSON)."""
    return f"{PREFIX}:config:v{version}"


def config_current() -> str:
    """The number of the newest configuration version."""
    return f"{PREFIX}:config:current"


def config_sequence() -> str:
    """Counter handing out configuration version numbers."""
    return f"{PREFIX}:config:current:seq"


def segment_members(segment_id: str) -> str:
    """Sorted set of a segment's members, scored by the time they entered."""
    return f"{PREFIX}:segment:{segment_id}:members"


def segment_changes() -> str:
    """Stream of `Segment Entered` / `Segment Exited` events, for workflows."""
    return f"{PREFIX}:segment-changes"


def backfill_progress(version: int) -> str:
    """Hash contact-shard → contacts re-evaluated under config `version`."""
    return f"{PREFIX}:backfill:v{version}"


def metrics() -> str:
    """Hash of dataflow counters (late events, merges, purges …)."""
    return f"{PREFIX}:metrics"


def quarantine_record(record_id: str) -> str:
    """One quarantined item (JSON): an event or entry a step could not take, and why."""
    return f"{PREFIX}:quarantine:{{{record_id}}}"


def quarantine_index() -> str:
    """Sorted set of quarantined record ids by the time they were quarantined."""
    return f"{PREFIX}:quarantine"


def outbox(shard: int) -> str:
    """Stream of actions waiting to be delivered, for the contacts of one outbox shard."""
    return f"{PREFIX}:outbox:{shard}"


def outbox_seen(action_id: str) -> str:
    """Marks that an action id entered the outbox (so a replayed decision is not appended twice)."""
    return f"{PREFIX}:outbox:seen:{{{action_id}}}"


def workflow_stats(workflow_id: str) -> str:
    """Hash of a workflow's exact counters: field `<stage>:<shard>:<counter>`, summed by the API."""
    return f"{PREFIX}:workflow:{{{workflow_id}}}:stats"


def webhook_endpoints() -> str:
    """Hash endpoint id → the webhook endpoint's configuration (JSON), written by the admin API."""
    return f"{PREFIX}:webhook:endpoints"


def webhook_health(endpoint_id: str) -> str:
    """Hash of an endpoint's delivery health (failing since, disabled at / why), written by dispatchers."""
    return f"{PREFIX}:webhook:health:{{{endpoint_id}}}"


def delivery_state(action_id: str) -> str:
    """An action's delivery so far (attempts, next attempt time, last error), while it is being delivered."""
    return f"{PREFIX}:delivery:{{{action_id}}}"


def delivery_stats() -> str:
    """Hash of delivery counters: field `<counter>:<target>` (`delivered:webhook:crm`, `dead:email` …)."""
    return f"{PREFIX}:delivery:stats"


def dead_letter(action_id: str) -> str:
    """A dead-lettered action (JSON): delivery given up, kept for operators to replay or delete."""
    return f"{PREFIX}:dead-letter:{{{action_id}}}"


def dead_letters() -> str:
    """Sorted set of dead-lettered action ids by the time they were given up."""
    return f"{PREFIX}:dead-letters"


def dispatcher_lease(shard: int) -> str:
    """Which dispatcher delivers an outbox shard now (its id, with a TTL)."""
    return f"{PREFIX}:dispatcher:lease:{shard}"


def dispatcher_members() -> str:
    """Sorted set of live dispatchers by when their membership expires (shards are shared among them)."""
    return f"{PREFIX}:dispatcher:members"


# ---- on-site personalization (catalog, recommendations, popups, decisions) ----------

def decision_doc(contact_id: str) -> str:
    """The contact's precomputed `DecisionDoc` (JSON, `state/decisions.py`), written by the dataflow."""
    return f"{PREFIX}:decision:{{{contact_id}}}"


def decisions_held(holder: str) -> str:
    """Sorted set of the products' documents one API or gateway process holds: member product id ('' for
    trending), score until when (epoch ms); the decisions read script does not send those again."""
    return f"{PREFIX}:decisions:held:{holder}"


def product(product_id: str) -> str:
    """One catalog product (JSON, `state/catalog.py`)."""
    return f"{PREFIX}:product:{{{product_id}}}"


def catalog_index() -> str:
    """Sorted set of catalog product ids (score 0: ordered by id, for paging)."""
    return f"{PREFIX}:catalog"


def product_neighbours(product_id: str) -> str:
    """A product's recommendation neighbours (JSON), written by the dataflow's products stage."""
    return f"{PREFIX}:recs:{{{product_id}}}"


def trending() -> str:
    """The products trending now (JSON list, decayed popularity), written by the products stage."""
    return f"{PREFIX}:recs:trending"


def campaign_stats(campaign_id: str) -> str:
    """Hash of a popup campaign's exact counters: field `<stage>:<shard>:<counter>`, summed by the API."""
    return f"{PREFIX}:campaign:{{{campaign_id}}}:stats"


def process_stats() -> str:
    """Hash `part:pid` → that process's latest `ProcessStats` (JSON), for the operators' dashboard."""
    return f"{PREFIX}:process-stats"


def part_restarts() -> str:
    """Hash part → how many times the supervisor (`attimo run`) restarted it since it started."""
    return f"{PREFIX}:part-restarts"


def dashboard_session(digest: str) -> str:
    """String → "1" while a dashboard login session is valid (TTL); named by the SHA-256 of its cookie value.

    Only the digest is stored, so a reader of Redis cannot take over a session.
    """
    return f"attimo:dashboard:session:{digest}"


# ---- operators' dashboard: heartbeat, rates, activity --------------------------------

def heartbeat_lease() -> str:
    """Which API process sends the heartbeat now (its id, with a short TTL)."""
    return f"{PREFIX}:heartbeat:lease"


def heartbeat_arrivals() -> str:
    """Stream of heartbeats the dataflow processed (`state.heartbeat.HeartbeatArrival`), capped."""
    return f"{PREFIX}:heartbeat:arrivals"


def heartbeat_points() -> str:
    """Sorted set of heartbeat measurements (`state.heartbeat.HeartbeatPoint` JSON) by sent time, ~10 min."""
    return f"{PREFIX}:heartbeat:points"


def event_rates(second: int) -> str:
    """Hash of one epoch second's counts: field source (`gateway`, `http`, `heartbeat`, `processed`) → events."""
    return f"{PREFIX}:rates:{second}"


def active_contacts() -> str:
    """Sorted set of visitor / contact ids by when the dataflow last processed an event of theirs."""
    return f"{PREFIX}:active"


def population() -> str:
    """Hash `<stage>:<shard>:contacts` → contacts a contact shard holds now (visitors: anonymous; contacts: known)."""
    return f"{PREFIX}:population"


def recs_updated_at() -> str:
    """When (epoch seconds) the products stage last wrote a recommendation document."""
    return f"{PREFIX}:recs:updated-at"


def segment_preview(preview_id: str) -> str:
    """Hash `<stage>:<shard>` → one contact shard's answer to a segment count preview (short-lived)."""
    return f"{PREFIX}:segment-preview:{preview_id}"


def dataflow_read_index() -> str:
    """Hash shard → how many entries of that stream the dataflow has read (its position in XINFO's entries-added)."""
    return f"{PREFIX}:progress:index"


# ---- privacy: erase, tombstones (`state/erasure.py`) ----------------------------------

def erasure(erase_id: str) -> str:
    """Hash of one erase request: its status and each contact shard's answer (no raw id: only hashes)."""
    return f"{PREFIX}:erase:{erase_id}"


def tombstone(id_hash: str) -> str:
    """String → erase id while the id hashing to `id_hash` is erased: the dispatcher and the API check it."""
    return f"{PREFIX}:tombstone:{id_hash}"


def erasures_to_scrub() -> str:
    """Sorted set of erase ids by when the dataflow applied them: the recovery store is scrubbed after."""
    return f"{PREFIX}:erase:scrub"
