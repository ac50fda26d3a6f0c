"""Accounts: users and teams, who may do what, invitations into a team, password hashes."""
