"""Account writes: registration, profile, passwords, API keys, JWT sessions, admin user
management (SPEC §3). Every write records an audit-log row; secrets never go into it.

Web views and API views both call these; they raise ``agentstore.errors`` exceptions with
field details (``{"field": ["message", …]}``) that both interfaces can show.
"""

from __future__ import annotations

from accounts.services.admin_users import (
    admin_user_create,
    admin_user_delete,
    admin_user_save_form,
    admin_user_update,
    user_password_set_by_admin,
    user_set_role,
)
from accounts.services.api_keys import (
    MAX_ACTIVE_API_KEYS,
    api_key_create,
    api_key_revoke,
    api_key_revoke_by_admin,
)
from accounts.services.sessions import (
    LOGIN_FAILED_CODE,
    TOKEN_INVALID_CODE,
    auth_login,
    login_issue_tokens,
    token_logout,
    token_refresh,
)
from accounts.services.users import (
    initial_admin_ensure,
    user_change_password,
    user_register,
    user_update,
)

__all__ = [
    "LOGIN_FAILED_CODE",
    "MAX_ACTIVE_API_KEYS",
    "TOKEN_INVALID_CODE",
    "admin_user_create",
    "admin_user_delete",
    "admin_user_save_form",
    "admin_user_update",
    "api_key_create",
    "api_key_revoke",
    "api_key_revoke_by_admin",
    "auth_login",
    "initial_admin_ensure",
    "login_issue_tokens",
    "token_logout",
    "token_refresh",
    "user_change_password",
    "user_password_set_by_admin",
    "user_register",
    "user_set_role",
    "user_update",
]
