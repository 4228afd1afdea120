"""One line for a configuration error (Hydra's, OmegaConf's or ours), told by the exception's type and message.

`describe_error` reads the exception and its `__cause__`, never its traceback. Two errors name no
key: OmegaConf's AssertionError for an override under a null key, and logging.config's ValueError
for a logging config it refuses. `name_unnamed_errors` (installed with the gate) wraps the two Hydra
functions that know the key, so those errors arrive as a ConfigError that names it.
"""
from __future__ import annotations

import functools
import re
from typing import Optional

from hydra._internal import hydra as hydra_app
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core import utils as hydra_utils
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from dnn_train.config.help import did_you_mean, known_keys, unknown_option
from dnn_train.config.schema import CONF_DIR
from dnn_train.errors import ConfigError

# Lines of Hydra's and OmegaConf's messages that say nothing to a user of the command line.
_NOISE = ("full_key:", "object_type=", "Config search path", "provider=", "reference_type=", "To append to your config")


def describe_error(ex: BaseException) -> Optional[str]:
    """One line for a configuration error (Hydra, OmegaConf or ours); None if it is not one."""
    cause = ex.__cause__
    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, HydraException) and isinstance(cause, ConfigError):  # e.g. raised by a Hydra plugin
        return str(cause)
    if isinstance(ex, MissingConfigException) and "Could not find '" in str(ex) and "/" in ex.missing_cfg_file:
        group, _, name = ex.missing_cfg_file.rpartition("/")  # GROUP=NAME, no conf/GROUP/NAME.yaml
        return unknown_option(group, name, ex.options)
    if isinstance(ex, OverrideParseException) and str(ex).startswith("LexerNoViableAltException"):
        return _unlexable(ex.override)
    if isinstance(ex, ConfigCompositionException) and str(ex).startswith("Could not override ") \
            and isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        overridden = re.match(r"Could not override '([^']+)'", str(ex))  # the key as given, not the first missing
        return _unknown_key(overridden.group(1) if overridden else cause.full_key)  # one: a key the config lacks
    if isinstance(ex, ConfigCompositionException) and str(ex).startswith("Error merging override ") \
            and isinstance(cause, ValidationError):  # a value the schema's type does not take
        return f"{str(ex).removeprefix('Error merging override ')}: {(_lines(cause) or [type(cause).__name__])[0]}"
    if isinstance(ex, (HydraException, OmegaConfBaseException)):
        parts = [line for e in (ex, cause) if e is not None for line in _lines(e)[:2]]
        return "; ".join(dict.fromkeys(parts)) or type(ex).__name__  # de-duplicated, in order
    return None


def _lines(ex: BaseException) -> list[str]:
    """The lines of a Hydra or OmegaConf message that say something to a user of the command line."""
    return [ln for ln in (line.strip() for line in str(ex).splitlines()) if ln and not ln.startswith(_NOISE)]


def _unknown_key(key: str) -> str:
    return f"{key}: unknown key{did_you_mean(key, known_keys(key.rsplit('.', 1)[0]))} (see the group's keys " \
           "with --cfg job)"


def _unlexable(override: str) -> str:
    """An override with a character Hydra's grammar does not take unquoted (optimizer=ädam): named
    as the typo it usually is, like any unknown option or key; a value, with how to quote it."""
    key, eq, value = override.partition("=")
    name = key.lstrip("+~")
    if eq and (CONF_DIR / name).is_dir():
        return unknown_option(name, value)
    if not re.fullmatch(r"[\w./@-]+", name, re.ASCII):
        return _unknown_key(name)
    return f"{override}: Hydra's override grammar takes such characters only in quotes: {key}='{value}'"


def name_unnamed_errors() -> None:
    """Hydra applies each override (`ConfigLoaderImpl._apply_overrides_to_config`) and configures
    each logging section (`configure_log`, looked up in the two modules that call it for a run: the
    job's section in hydra.core.utils.run_job, Hydra's own in hydra._internal.hydra): wrapped here so
    that the errors raised there name the override or the section. Idempotent."""
    apply = ConfigLoaderImpl._apply_overrides_to_config
    if getattr(apply, "dnn_train_named", False):
        return

    @functools.wraps(apply)
    def apply_each(overrides, cfg):
        for override in overrides:
            try:
                apply([override], cfg)
            except AssertionError:  # OmegaConf.update's, for a key under a null one: it names neither
                null = _null_parent(override.key_or_group, cfg)
                if null is None:
                    raise
                raise ConfigError(f"{override.input_line}: cannot be set, {null} is null in this config") from None

    apply_each.dnn_train_named = True
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_each)
    for module in (hydra_utils, hydra_app):
        module.configure_log = _naming_section(module.configure_log)


def _null_parent(key: str, cfg) -> Optional[str]:
    """The first key above `key` whose value is null in `cfg`, or None."""
    parts = key.split(".")
    return next((".".join(parts[:i]) for i in range(1, len(parts))
                 if OmegaConf.select(cfg, ".".join(parts[:i]), throw_on_missing=False) is None), None)


def _naming_section(configure_log):
    """Hydra's configure_log(log_config, ...), raising what logging.config.dictConfig refuses in a
    logging config that passed the gate as a ConfigError that names the section (hydra.job_logging)."""
    @functools.wraps(configure_log)
    def named(log_config, *args, **kwargs):
        try:
            return configure_log(log_config, *args, **kwargs)
        except Exception as ex:  # noqa: BLE001 - whatever logging refuses is the config's
            cause = f" ({ex.__cause__})" if ex.__cause__ else ""
            raise ConfigError(f"hydra.{log_config._key()}: {ex}{cause}") from ex

    return named
