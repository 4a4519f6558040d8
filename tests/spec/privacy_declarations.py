"""The personal data of the GDPR example's events, declared (issue 10's declarations);
imported by the test and by its worker processes (EVSTORE_HANDLER_MODULES)."""

from __future__ import annotations

from evstore.core.privacy.declarations import PersonalData, declare

declare(PersonalData("UserCreated", ("data.email", "data.name"), subject="metadata.user_id"))
declare(PersonalData("UserUpdated", ("data.email", "data.name"), subject="metadata.user_id"))
