"""The WeChat bot (aiohttp): callback endpoint, routing, conversations. Records facts and enqueues jobs;
never applies points."""
