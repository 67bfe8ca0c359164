"""The simulator's OAuth handlers: token issue and revoke (au10001 / au10002)."""

from __future__ import annotations

from typing import Any

import structlog

from engine.sim.reply import RestHandler, SimReply, auth_error
from engine.sim.tokens import TokenStore

log = structlog.get_logger(__name__)


def oauth_handlers(tokens: TokenStore) -> dict[str, RestHandler]:
    """Token issue and revoke, answering exactly as au10001 / au10002 do."""

    async def issue(body: dict[str, Any], next_key: str) -> SimReply:
        grant = str(body.get("grant_type") or "").strip()
        if not grant:
            raise auth_error(
                8011,
                "Access Token을 발급하는데 실패했습니다. 입력값에 grant_type이 들어오지 않았습니다",
            )
        if grant != "client_credentials":
            raise auth_error(
                8012, "Access Token을 발급하는데 실패했습니다. grant_type의 값이 맞지 않습니다"
            )
        appkey = str(body.get("appkey") or "").strip()
        secretkey = str(body.get("secretkey") or "").strip()
        if not appkey or not secretkey:
            raise auth_error(8020, "입력파라미터로 appkey 또는 secretkey가 들어오지 않았습니다.")
        token, expires_dt = tokens.issue(appkey, secretkey)
        log.info("sim_token_issued", expires_dt=expires_dt)
        return SimReply({"expires_dt": expires_dt, "token_type": "bearer", "token": token})

    async def revoke(body: dict[str, Any], next_key: str) -> SimReply:
        appkey = str(body.get("appkey") or "").strip()
        secretkey = str(body.get("secretkey") or "").strip()
        token = str(body.get("token") or "").strip()
        if not appkey or not secretkey:
            raise auth_error(8020, "입력파라미터로 appkey 또는 secretkey가 들어오지 않았습니다.")
        if not token:
            raise auth_error(
                8016, "Access Token을 폐기하는데 실패했습니다. 입력값에 Token이 들어오지 않았습니다"
            )
        if not tokens.revoke(token):
            raise auth_error(
                8015, "Access Token을 폐기하는데 실패했습니다. 실패사유=유효하지 않은 Token"
            )
        log.info("sim_token_revoked")
        return SimReply({})

    return {"au10001": issue, "au10002": revoke}
