"""The arq worker: applies recorded facts to the ledger exactly once, keeps live boards, delivers the
outbox, runs the calendar. Imports `scoring`; never imported by it."""
