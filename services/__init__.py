"""The domain of Storyboard Studio: tables, accounts, storyboards and their rules.

Services take plain values and an open database session, enforce every rule
(validation, access, numbering, workflow), and raise the errors of
`services.errors`. They know nothing of GraphQL or HTTP.
"""
