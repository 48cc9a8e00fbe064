"""Identity and tenancy: users and their provider sign-ins, browser sessions, orgs, roles, invitations,
API and short-lived tokens, the audit log, and the bootstrap of a fresh installation."""

from ferryman.identity.accounts import Accounts, build_accounts
from ferryman.identity.audit import AuditLog
from ferryman.identity.enrolments import Enrolled, EnrolmentService, IssuedEnrolment
from ferryman.identity.invitations import InvitationService
from ferryman.identity.mail import Mailer, SmtpMailer
from ferryman.identity.models import (
    ALL_SCOPES,
    ROLE_SCOPES,
    SCOPE_PRESETS,
    AuditAction,
    AuditEvent,
    BrowserSession,
    Invitation,
    IssuedInvitation,
    IssuedToken,
    Member,
    Membership,
    Org,
    Principal,
    Provider,
    ProviderIdentity,
    Role,
    Scope,
    TokenInfo,
    User,
    WorkerPrincipal,
)
from ferryman.identity.orgs import OrgService
from ferryman.identity.repository import IdentityRepository
from ferryman.identity.revocations import AuthState
from ferryman.identity.service import (
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    Bootstrap,
    IdentityService,
    ShortLivedToken,
    load_or_create_secret_key,
    write_secret_file,
)
from ferryman.identity.sessions import SessionService
from ferryman.identity.signin import SignInService

__all__ = [
    "Accounts",
    "ALL_SCOPES",
    "DEFAULT_TOKEN_DAYS",
    "MAX_TOKEN_DAYS",
    "ROLE_SCOPES",
    "SCOPE_PRESETS",
    "AuditAction",
    "AuditEvent",
    "AuditLog",
    "AuthState",
    "Bootstrap",
    "Enrolled",
    "EnrolmentService",
    "IssuedEnrolment",
    "BrowserSession",
    "IdentityRepository",
    "IdentityService",
    "Invitation",
    "InvitationService",
    "IssuedInvitation",
    "IssuedToken",
    "Mailer",
    "Member",
    "Membership",
    "Org",
    "OrgService",
    "Principal",
    "Provider",
    "ProviderIdentity",
    "Role",
    "Scope",
    "SessionService",
    "ShortLivedToken",
    "SignInService",
    "SmtpMailer",
    "TokenInfo",
    "User",
    "WorkerPrincipal",
    "build_accounts",
    "load_or_create_secret_key",
    "write_secret_file",
]
