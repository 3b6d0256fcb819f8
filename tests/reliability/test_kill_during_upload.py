"""The server SIGKILLed in the middle of uploads (bench/reliability_kill.py has the long loop).

After every restart: no row points at a missing or different blob, no partial version is
visible, verify-log passes, and the client resumes and completes with the right hash.
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from bench import reliability_kill
from bench.harness import PASSPHRASE, ServerProc, new_lawyer, sha256_file, write_random_file
from client.crypto import LocalStateKey
from client.transfers import TransferStates

MIB = 1024 * 1024


def test_three_random_kills_lose_nothing(tmp_path: Path, database_url: str) -> None:
    report = reliability_kill.run(3, 12 * MIB, random.randrange(1 << 32), database_url,
                                  tmp_path, log=lambda _: None)
    assert report.kills == 3


@pytest.mark.slow
def test_twenty_random_kills_lose_nothing(tmp_path: Path, database_url: str) -> None:
    report = reliability_kill.run(20, 20 * MIB, random.randrange(1 << 32), database_url,
                                  tmp_path, log=lambda _: None)
    assert report.kills == 20


class _LoseCompletionReply(httpx.HTTPTransport):
    """Delivers the completion request, then drops its reply, as a crash right after the commit
    or a broken connection would."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/complete"):
            response.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_resume_after_a_lost_completion_reply_finishes_once(
    tmp_path: Path, database_url: str, servers: list[ServerProc]
) -> None:
    from client.api import ApiError
    from client.vault import Vault

    server = ServerProc(tmp_path / "server", database_url=database_url).start()
    servers.append(server)
    home = tmp_path / "home"
    vault, _ = new_lawyer(server.url, home)
    case_id = vault.create_case("R v Lost Reply")
    src = tmp_path / "interview.bin"
    sha = write_random_file(src, 3 * MIB)

    flaky = Vault(str(home), server=server.url, passphrase=PASSPHRASE,
                  transport=_LoseCompletionReply())
    with pytest.raises(ApiError):
        flaky.put(case_id, [src])

    (done,) = Vault(str(home), server=server.url, passphrase=PASSPHRASE).put(case_id, [src])
    assert done["sha256"] == sha
    listed = [f for f in vault.ls(case_id) if f["name"] == src.name]
    assert [(f["file_id"], f["version"]) for f in listed] == [(done["file_id"], 1)]
    assert list(TransferStates(vault.keystore, LocalStateKey.of(vault.identity()))) == []
    out = tmp_path / "back.bin"
    vault.get(case_id, done["file_id"], output=out)
    assert sha256_file(out) == sha
