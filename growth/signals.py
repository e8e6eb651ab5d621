"""What happened, told to whoever listens: signals carry ids only and are sent after commit."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

investor_registered = _signals.signal("investor-registered")  # investor_id
milestone_reached = _signals.signal("milestone-reached")  # investor_id, milestone
investment_created = _signals.signal("investment-created")  # investor_id, investment_id (our row id)
investment_redeemed = _signals.signal("investment-redeemed")  # investor_id, investment_id
investment_matured = _signals.signal("investment-matured")  # investor_id, investment_id
consent_changed = _signals.signal("consent-changed")  # investor_id, channel, granted
referral_confirmed = _signals.signal("referral-confirmed")  # confirmation_id, referee_id, referrer_id (after commit)
