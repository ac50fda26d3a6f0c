"""Limits every server of a studio shares: request rates, logIn waits, open subscriptions."""
