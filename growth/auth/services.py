"""Staff accounts, sign-in with throttling, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from growth.audit.services import record
from growth.auth import rules
from growth.auth.models import ApiToken, LoginAttempt, StaffUser
from growth.auth.permissions import Role
from growth.errors import Conflict, DomainError, NotFound
from growth.timeutil import utcnow

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the account does not exist, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD = 10
TOKEN_PREFIX = "gro_"  # noqa: S105 - a marker, not a secret
MAX_TOKEN_LIFETIME = timedelta(days=3650)


def normalize_email(email: str) -> str:
    """Return the canonical form of a staff email."""
    return email.strip().lower()


def hash_password(password: str) -> str:
    """Hash a password with Argon2id."""
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError(_("密码至少需要 %(n)d 个字符", n=MIN_PASSWORD),
                          field="password")


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise DomainError(_("未知角色：%(role)s", role=role), field="role") from None


def create_user(
    email: str, *, role: str, password: str, name: str = "", session: Session, by: str | None = None
) -> StaffUser:
    """Create a staff account."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise DomainError(_("邮箱格式不正确"), field="email")
    _check_role(role)
    _check_password(password)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise Conflict(_("该邮箱已存在"), field="email")
    user = StaffUser(email=email, role=role, name=name or email.split("@")[0], password_hash=hash_password(password))
    session.add(user)
    session.flush()
    record("user.created", session=session, target_type="staff_user", target_id=user.id,
           details={"email": email, "role": role}, actor=by)
    return user


def get_user(user_id: int, *, session: Session) -> StaffUser:
    """Return a staff account or raise NotFound."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(_("用户不存在"))
    return user


def find_user(email: str, *, session: Session) -> StaffUser:
    """Return the staff account with this email or raise NotFound."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalize_email(email)))
    if user is None:
        raise NotFound(_("用户不存在：%(email)s", email=email))
    return user


def list_users(*, session: Session) -> list[StaffUser]:
    """Return every staff account, by email."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.email)))


def _keep_an_active_admin(user: StaffUser, *, session: Session) -> None:
    """Refuse a change that would leave no active administrator (the user is about to stop being one)."""
    if user.role != Role.ADMIN or not user.active:
        return
    # Lock the active admins' rows: two admins demoting each other at once must not both succeed (PostgreSQL).
    others = session.scalars(
        select(StaffUser.id).where(StaffUser.role == Role.ADMIN.value, StaffUser.active.is_(True),
                                   StaffUser.id != user.id).with_for_update()
    ).all()
    if not others:
        raise Conflict(_("至少需要保留一名启用的管理员：请先把另一位员工设为管理员。"), field="role")


def change_role(user: StaffUser, role: str, *, session: Session, by: str | None = None) -> None:
    """Give a staff member another role; their sessions end. The last active admin stays an admin."""
    new = _check_role(role)
    if new == user.role:
        return
    if new != Role.ADMIN:
        _keep_an_active_admin(user, session=session)
    old = user.role
    user.role = new.value
    user.session_version += 1
    session.flush()
    record("user.role_changed", session=session, target_type="staff_user", target_id=user.id,
           details={"email": user.email, "from": old, "to": user.role}, actor=by)


def set_active(user: StaffUser, active: bool, *, session: Session) -> None:
    """Enable or disable a staff account; disabling ends its sessions. The last active admin stays enabled."""
    if not active:
        _keep_an_active_admin(user, session=session)
    user.active = active
    user.session_version += 1
    session.flush()
    record("user.enabled" if active else "user.disabled", session=session, target_type="staff_user",
           target_id=user.id, details={"email": user.email})


def _replace_password(user: StaffUser, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    user.session_version += 1  # every other session of this user ends
    user.password_is_published = False


def set_password(user: StaffUser, password: str, *, session: Session, by: str | None = None) -> None:
    """Set a new password chosen by an operator (CLI); the user's sessions end."""
    _replace_password(user, password)
    user.must_change_password = False
    session.flush()
    record("user.password_changed", session=session, target_type="staff_user", target_id=user.id,
           details={"email": user.email, "by": "operator"}, actor=by)


def change_password(user: StaffUser, current: str, new: str, *, session: Session) -> None:
    """Let a user replace their own password, proving the current one; their other sessions end."""
    try:
        ok: bool = _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise DomainError(_("当前密码不正确。"), field="current_password")
    if new == current:
        raise DomainError(_("新密码不能与当前密码相同。"), field="new_password")
    _replace_password(user, new)
    user.must_change_password = False
    session.flush()
    record("user.password_changed", session=session, target_type="staff_user", target_id=user.id,
           details={"email": user.email, "by": "self"}, actor_id=user.id, actor=user.email)


def reset_password(user: StaffUser, *, session: Session) -> str:
    """Give a user a temporary password they must change at next sign-in; return it (shown once)."""
    temporary = secrets.token_urlsafe(12)
    _replace_password(user, temporary)
    user.must_change_password = True
    session.flush()
    record("user.password_reset", session=session, target_type="staff_user", target_id=user.id,
           details={"email": user.email})
    return temporary


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a sign-in attempt."""

    user: StaffUser | None
    retry_after: timedelta | None = None


def sign_in(
    email: str, password: str, *, ip: str, session: Session, now: datetime, max_failures: int, window: timedelta,
    account_max_failures: int,
) -> SignInResult:
    """Check credentials with per-(account, address) throttling and a per-account ceiling (auth/rules.py).

    An attempt refused while throttled is not checked and not counted as a failure, so a lock always
    runs down; the answer never tells whether the account exists.
    """
    email = normalize_email(email)[:254]
    failures = session.execute(
        select(LoginAttempt.ip, LoginAttempt.at).where(
            LoginAttempt.email == email, LoginAttempt.at >= now - window, LoginAttempt.succeeded.is_(False),
        )
    ).all()
    known_address = session.scalar(
        select(LoginAttempt.id).where(
            LoginAttempt.email == email, LoginAttempt.ip == ip, LoginAttempt.succeeded.is_(True),
            LoginAttempt.at >= now - rules.KNOWN_ADDRESS_AGE,
        ).limit(1)
    ) is not None
    until = rules.sign_in_blocked_until(
        pair_failures=[row.at for row in failures if row.ip == ip], account_failures=[row.at for row in failures],
        known_address=known_address, now=now, max_failures=max_failures,
        account_max_failures=account_max_failures, window=window,
    )
    if until is not None:
        record("auth.login_throttled", session=session, details={"email": email}, actor=email)
        return SignInResult(None, retry_after=until - now)

    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, ip=ip, succeeded=ok, at=now))
    if not ok:
        record("auth.login_failed", session=session, details={"email": email}, actor=email)
        return SignInResult(None)
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    record("auth.login", session=session, target_type="staff_user", target_id=user.id,
           actor_id=user.id, actor=user.email)
    return SignInResult(user)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    user: StaffUser, name: str, *, session: Session, expires_in: timedelta | None = None, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create an API token for a user (valid until revoked, or for `expires_in`); return it and the plain token.

    The plain token is shown only once.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise DomainError(_("请填写令牌名称（最多 100 字）"), field="name")
    if expires_in is not None and not timedelta(days=1) <= expires_in <= MAX_TOKEN_LIFETIME:
        raise DomainError(_("有效期应为 1 到 %(n)d 天", n=MAX_TOKEN_LIFETIME.days), field="expires_days")
    now = now or utcnow()
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=plain[:12], token_hash=_hash_token(plain), created_at=now,
                     expires_at=now + expires_in if expires_in is not None else None)
    session.add(token)
    session.flush()
    record("token.created", session=session, target_type="api_token", target_id=token.id,
           details={"name": name, "user": user.email,
                    "expires_at": token.expires_at.isoformat() if token.expires_at else None})
    return token, plain


def list_tokens(*, session: Session, user: StaffUser | None = None) -> list[ApiToken]:
    """Return API tokens, newest first; only one user's when given."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def revoke_token(token_id: int, *, session: Session, owner: StaffUser | None = None) -> ApiToken:
    """Revoke a token (only the owner's, when an owner is given)."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound(_("令牌不存在"))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        record("token.revoked", session=session, target_type="api_token", target_id=token.id,
               details={"name": token.name, "user": token.user.email})
    return token


def token_for(plain: str, *, session: Session, now: datetime) -> ApiToken | None:
    """Return the live token (not revoked, not expired, its user active) behind a bearer value, or None.

    Only reads: stamping the token's last use is `touch_token`, done in a short write of its own.
    """
    if not plain.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(plain)))
    if token is None or not rules.token_is_live(revoked_at=token.revoked_at, expires_at=token.expires_at, now=now):
        return None
    if not token.user.active:
        return None
    return token


def user_for_token(plain: str, *, session: Session, now: datetime) -> StaffUser | None:
    """Return the active user behind a live bearer token, or None (reads only)."""
    token = token_for(plain, session=session, now=now)
    return None if token is None else token.user


def touch_token(token_id: int, *, session: Session, now: datetime) -> None:
    """Stamp a token's last use, unless another request stamped it within the interval meanwhile."""
    stale = now - rules.TOKEN_TOUCH_INTERVAL
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale))
        .values(last_used_at=now)
    )
