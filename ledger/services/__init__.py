"""Writes that move money. Every function here runs inside `transaction.atomic()`.

Modules: `postings` (balanced transactions, wallets), `holds` (reserve/capture/void/expire),
`budgets` (counters), `topups` (Stripe, test provider, redemption codes, operator grants),
`reconcile` (invariant checks).
"""
