"""The window: the mini program's JSON API (`web/api.py`), WeChat login (`web/auth.py`) and the mobile pages
(`web/pages.py`), served on the bot's port. Views are thin: every read and write is a `scoring/` call; web/
holds no SQL and imports neither bot nor worker (bot/app.py is the composition root that mounts it)."""
