"""The domain: models, rules table, ledger, periods, boards and ratings.

Imports neither aiohttp, arq nor wechatpy; `bot` and `worker` import this package, never the reverse.
"""
