"""The configuration version a contact shard works under, compiled once.

Versions are immutable, so a process loads each one from Redis once and
shares it between all its contact shards; a resumed shard asks for the
version its snapshot recorded and gets exactly the rules it ran with.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import msgspec
import redis

from dataflows.errors import DataflowError
from dataflows.rules.campaign_index import CampaignIndex
from dataflows.rules.conditions import CompiledSegments, compile_segments
from dataflows.rules.scoring_index import ScoringIndex
from dataflows.rules.workflow_index import WorkflowIndex
from state.config import ActiveConfig, Score, WindowCount
from state.config_rules import ConfigError, validate_config
from state.config_store import load_config_version
from state.segment_graph import walk
from state.workflows import OnScore

log = logging.getLogger(__name__)


class ConfigUnavailableError(DataflowError):
    """A configuration version that is not stored or cannot be used (the shard keeps its current one)."""


@dataclass(frozen=True)
class LiveConfig:
    """A configuration version compiled for evaluation: segments in plan order, scoring rules indexed."""

    config: ActiveConfig
    segments: CompiledSegments
    scoring: ScoringIndex
    workflows: WorkflowIndex
    # How long window entries must be kept: the longest window any profile
    # figure, segment or stage rule asks about, plus the allowed lateness.
    retention_s: float
    # Scores at which something shown changes: temperature edges and every
    # `Score` condition; decay crossing one of them needs a timer.
    score_thresholds: tuple[float, ...]
    campaigns: CampaignIndex = field(default_factory=CampaignIndex)

    @property
    def version(self) -> int:
        return self.config.version

    @classmethod
    def of(cls, config: ActiveConfig, validate: bool = True) -> LiveConfig:
        """Validate (the admin API's own check, `state.config_rules`) and compile `config`.

        Raises ConfigError for a configuration that cannot run. `validate=False`
        is for unit tests of a rule's own behaviour on configurations the admin
        API would refuse.
        """
        if validate:
            validate_config(config)
        conditions = [s.when for s in config.segments] + [r.when for r in config.stages]
        conditions += [c.when for c in config.campaigns if c.when is not None]
        leaves = [leaf for c in conditions for leaf in walk(c)]
        asked = [leaf.window_s for leaf in leaves if isinstance(leaf, WindowCount)]
        longest = max([*config.windows.windows_s, *asked], default=0.0)
        thresholds = {config.thresholds.warm, config.thresholds.hot}
        thresholds |= {leaf.value for leaf in leaves if isinstance(leaf, Score)}
        thresholds |= {w.trigger.threshold for w in config.workflows if isinstance(w.trigger, OnScore)}
        return cls(config, compile_segments(config.segments, config.stages), ScoringIndex.of(config),
                   WorkflowIndex.of(config),
                   longest + config.windows.lateness_s, tuple(sorted(thresholds)), CampaignIndex.of(config))


class ConfigLoader:
    """Loads and caches configuration versions for every shard of a process."""

    def __init__(self, redis_url: str | None) -> None:
        self._redis_url = redis_url
        self._client: redis.Redis | None = None
        self._cache: dict[int, LiveConfig] = {0: LiveConfig.of(ActiveConfig())}
        self._lock = threading.Lock()

    def get(self, version: int) -> LiveConfig:
        """The compiled configuration `version` (version 0 is the defaults).

        Waits for Redis while it is unreachable (nothing can proceed without
        the version anyway, and raising would restart the dataflow in a loop);
        raises ConfigUnavailableError for a version that is missing or invalid.
        """
        cached = self._cache.get(version)
        if cached is not None:
            return cached
        with self._lock:
            if version not in self._cache:
                if self._redis_url is None:
                    raise ConfigUnavailableError(f"configuration version {version} requested without Redis")
                self._cache[version] = self._load(version)
            return self._cache[version]

    def _load(self, version: int) -> LiveConfig:
        assert self._redis_url is not None
        if self._client is None:
            self._client = redis.Redis.from_url(self._redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
        pause = 0.05
        while True:
            try:
                return LiveConfig.of(load_config_version(self._client, version))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("redis unreachable; waiting to load a configuration",
                            extra={"version": version, "error": str(exc)})
                time.sleep(pause)
                pause = min(1.0, pause * 2)
            except (LookupError, msgspec.DecodeError, ConfigError, redis.RedisError) as exc:
                raise ConfigUnavailableError(f"configuration version {version}: {exc}") from exc

    def put(self, config: ActiveConfig) -> LiveConfig:
        """Register a configuration directly (tests, and the defaults)."""
        live = LiveConfig.of(config)
        self._cache[config.version] = live
        return live
