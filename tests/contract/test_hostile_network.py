"""A preset decides what to train, not where data goes: a value read from the environment or a file never
travels inside a URL that a config wrote, and is never printed. Cases: every key that reaches the network
(config.NETWORK_KEYS) x every way to embed an outside value; a whole URL from one variable stays allowed."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dnn_train.config.network import NETWORK_KEYS, check_network_keys
from dnn_train.errors import ConfigError
from tests.conftest import make_cfg
from tests.hostile import SMALL_RUN, Sandbox

SECRET = "s3cr3t-value-42"
NEEDS = {"logger.tracking_uri": ["logger=mlflow"]}
EMBEDDED = ["http://127.0.0.1:9/${oc.env:DNN_SECRET}/", "http://127.0.0.1:9/?k=${oc.env:DNN_SECRET}",
            "${oc.env:DNN_MIRROR}/${oc.env:DNN_SECRET}", "http://${oc.env:DNN_SECRET}.example/",
            "http://127.0.0.1:9/${oc.env:DNN_SECRET,x}/"]
ALLOWED = ["${oc.env:DNN_MIRROR}", "http://127.0.0.1:9/fixed/", "http://127.0.0.1:9/${now:%Y}/"]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("DNN_SECRET", SECRET)
    monkeypatch.setenv("DNN_MIRROR", "http://127.0.0.1:9/mirror")


@pytest.mark.parametrize("key", NETWORK_KEYS)
@pytest.mark.parametrize("url", EMBEDDED)
def test_an_outside_value_inside_a_url_is_refused_without_showing_it(key, url, secret_env):
    cfg = make_cfg(*NEEDS.get(key, []), f"{key}='{url}'")
    with pytest.raises(ConfigError) as refused:
        check_network_keys(cfg)
    assert SECRET not in str(refused.value) and str(refused.value).startswith(f"{key}=")


@pytest.mark.parametrize("key", NETWORK_KEYS)
@pytest.mark.parametrize("url", ALLOWED)
def test_a_written_url_or_one_whole_variable_is_allowed(key, url, secret_env):
    check_network_keys(make_cfg(*NEEDS.get(key, []), f"{key}='{url}'"))


def test_a_reference_to_a_key_that_reads_the_environment_is_followed(secret_env):
    cfg = make_cfg("data.url='http://127.0.0.1:9/${data.root}/'", "data.root='${oc.env:DNN_SECRET}'")
    with pytest.raises(ConfigError) as refused:
        check_network_keys(cfg)
    assert SECRET not in str(refused.value)
    check_network_keys(make_cfg("data.url='http://127.0.0.1:9/${data.name}/'"))  # the config's own text: fine


def test_a_preset_sending_a_secret_makes_no_request(tmp_path):
    """Through the command line, as the issue's author did it: a --config-dir preset, a loopback server
    that records every request, a secret in the environment. Exit 2, one line, no request, no secret."""
    box = Sandbox(tmp_path)
    requests: list = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    presets = tmp_path / "presets"
    (presets / "experiment").mkdir(parents=True)
    (presets / "experiment" / "leak.yaml").write_text(
        "# @package _global_\ndata:\n  url: http://127.0.0.1:%d/${oc.env:DNN_SECRET}/\n" % httpd.server_port)
    try:
        proc = box.cli("--config-dir", str(presets), "data=mnist", "data.download=true", "experiment=leak",
                       *SMALL_RUN[5:], f"hydra.run.dir={box.run}", env={"DNN_SECRET": SECRET})
    finally:
        httpd.shutdown()
        httpd.server_close()
    line = box.check(proc, code=2, prefix="dnn_train: error: data.url=")
    assert SECRET not in proc.stdout + proc.stderr and not requests, (line, requests)
    assert not box.run.exists()
