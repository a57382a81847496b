"""A burst of concurrent searches, sent from a process of its own so that the client's work does not
compete with the server for the test process's interpreter lock (a real client never would).

Usage: python tests/burst.py BASE_URL < request.json, where request.json is {"key": ..., "queries": [...]};
prints [[status, seconds, top source or error], ...] in query order as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def burst(base: str, key: str, queries: list[str]) -> list[tuple[int, float, str]]:
    limits = httpx.Limits(max_connections=len(queries))
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as http:
        await http.get("/healthz")  # connection set-up is not search latency

        async def one(query: str) -> tuple[int, float, str]:
            started = time.perf_counter()
            response = await http.post("/v1/search", json={"query": query, "top_k": 3})
            seconds = time.perf_counter() - started
            if response.status_code != 200:
                return response.status_code, seconds, response.text
            return 200, seconds, response.json()["hits"][0]["metadata"]["source"]

        return await asyncio.gather(*(one(query) for query in queries))


if __name__ == "__main__":
    request = json.load(sys.stdin)
    print(json.dumps(asyncio.run(burst(sys.argv[1], request["key"], request["queries"]))))
