"""Request and response bodies of the virtual clinic API (documented in the OpenAPI file)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from control.models import Id, line, text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Empty(_Body):
    """No fields (send ``{}`` or nothing)."""


class LoginBody(_Body):
    username: Annotated[str, line(64)]
    password: str = Field(max_length=256)
    station: Annotated[str, line(80)] | None = Field(
        default=None,
        description="name of a dedicated station: stays signed in clinic.station_days",
    )  # fmt: skip


class AvailabilityBody(_Body):
    available: bool


class RequestBody(_Body):
    provider_id: Id
    service: Annotated[str, line(80)] | None = Field(
        default=None,
        description="account service; required when the organization has several",
    )  # fmt: skip


class AcceptBody(_Body):
    enter: bool = Field(
        default=False, description="accept and enter: the answer carries the provider's join"
    )


class DeclineBody(_Body):
    note: Annotated[str, text(2000)] | None = Field(
        default=None, description="shown to the requester (if notes are enabled)"
    )


class StaffCreateBody(_Body):
    username: Annotated[str, line(64)]
    display_name: Annotated[str, line(100)]
    password: str = Field(max_length=256)
    groups: list[str] = Field(
        max_length=4, description="any of request, provide, administer, mobile"
    )


class StaffPatchBody(_Body):
    display_name: Annotated[str, line(100)] | None = None
    groups: list[str] | None = Field(default=None, max_length=4)
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=256)


class PolicyBody(_Body):
    notes_enabled: bool | None = None
    services: list[Annotated[str, line(80)]] | None = Field(default=None, max_length=50)


# --- answers -----------------------------------------------------------------------------


class StaffOut(BaseModel):
    id: str
    org_id: str
    username: str
    display_name: str
    groups: list[str]
    available: bool
    disabled: bool


class SessionOut(BaseModel):
    id: str
    staff_id: str
    created_at: float
    expires_at: float
    station: str | None


class PolicyOut(BaseModel):
    notes_enabled: bool
    services: list[str]


class Party(BaseModel):
    id: str
    name: str


class VisitParty(Party):
    status: str = Field(
        description="not_arrived, waiting (in waiting room), in_meeting, away (connection "
        "lost: back within the reconnect grace, or left) or left"
    )


class RequestOut(BaseModel):
    id: str
    org_id: str
    requester: Party
    provider: Party
    service: str | None
    state: str = Field(description="requested, accepted, declined, expired or cancelled")
    reason: str | None = Field(description="declined, unavailable, no answer or cancelled")
    note: str | None
    created_at: float
    expires_at: float
    answered_at: float | None
    visit_id: str | None
    dismissed: bool
    version: int


class VisitOut(BaseModel):
    id: str
    org_id: str
    request_id: str
    provider: VisitParty
    requester: VisitParty
    service: str | None
    room_id: str
    state: str = Field(description="open or ended")
    created_at: float
    ended_at: float | None


class JoinOut(BaseModel):
    role: str = Field(description="host (the provider) or guest (the requester)")
    room_id: str
    token: str
    url: str = Field(description="the web client's room page for this join")
    signaling_url: str
    expires_at: float


class ProviderOut(BaseModel):
    id: str
    name: str
    available: bool


class LoginOut(BaseModel):
    token: str
    session: SessionOut
    staff: StaffOut


class MeOut(BaseModel):
    staff: StaffOut
    session: SessionOut
    policy: PolicyOut
    time_zone: str = Field(
        description="the organization's IANA time zone (its departments'): the dashboards "
        "show times in it, naming it when the reader's clock is in another"
    )


class DashboardOut(BaseModel):
    staff: StaffOut
    policy: PolicyOut
    visits: list[VisitOut]
    inbox: list[RequestOut] | None = Field(None, description="open requests to me (providers)")
    outbox: list[RequestOut] | None = Field(None, description="my open and declined requests")
    providers: list[ProviderOut] | None = None


class ProvidersOut(BaseModel):
    providers: list[ProviderOut]


class RequestEnvelope(BaseModel):
    request: RequestOut


class RequestsOut(BaseModel):
    inbox: list[RequestOut]
    outbox: list[RequestOut]


class AcceptOut(BaseModel):
    request: RequestOut
    visit: VisitOut
    join: JoinOut | None = None


class VisitEnvelope(BaseModel):
    visit: VisitOut


class VisitsOut(BaseModel):
    visits: list[VisitOut]


class EnterOut(BaseModel):
    visit: VisitOut
    join: JoinOut


class StaffEnvelope(BaseModel):
    staff: StaffOut


class StaffList(BaseModel):
    staff: list[StaffOut]


class StationsOut(BaseModel):
    stations: list[SessionOut]


class PolicyEnvelope(BaseModel):
    policy: PolicyOut
