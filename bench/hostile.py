#!/usr/bin/env python3
"""Hostile-load figures for one server binary: loopback only, bounded in count and time.

  bench/hostile.py path/to/mcp-server [slow|sessions|idle|all]

slow:     520 connections send `Content-Length: 100000` and one byte every 3 s while a probe
          POSTs tools/list once a second for 30 s; prints probe successes.
sessions: 3,000 `initialize` without DELETE (MCP_SESSIONS=true, SESSION_TTL=5s); prints RSS
          before, after, and 8 s later, and how many were refused.
idle:     1,000 keep-alive connections idle after one request and 1,000 silent ones
          (IDLE_TIMEOUT=10s where the binary knows it); prints how many are open after 15 s.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "0"}}}).encode()


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def head(length, extra=""):
    return (f"POST /mcp HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
            f"accept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-11-25\r\n"
            f"content-length: {length}\r\n{extra}\r\n").encode()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def request(port, body, timeout=5.0):
    """One request on a fresh connection: (status, headers text) or (None, '') on failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        writer.write(head(len(body), "connection: close\r\n") + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), timeout)
        writer.close()
        text = data.decode(errors="replace")
        return int(text.split(" ")[1]), text
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        return None, ""


class Server:
    def __init__(self, binary, env):
        self.port, self.data = free_port(), tempfile.mkdtemp()
        full = dict(os.environ, PORT=str(self.port), METRICS_PORT=str(free_port()), DATA_DIR=self.data,
                    LOG_LEVEL="error", HOST=HOST, **env)
        self.proc = subprocess.Popen([binary, "serve"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self):
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
                writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
                if (await reader.read(64)).startswith(b"HTTP/1.1 200"):
                    writer.close()
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def slow(binary):
    server = Server(binary, {})
    await server.ready()
    stop = asyncio.Event()

    async def trickler():
        try:
            _, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(head(100_000))
            while not stop.is_set():
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(3)
            writer.close()
        except OSError:
            pass

    tasks = [asyncio.create_task(trickler()) for _ in range(520)]
    await asyncio.sleep(2)
    ok = 0
    for _ in range(30):
        started = time.monotonic()
        status, _ = await request(server.port, LIST, 1.0)
        ok += status == 200
        await asyncio.sleep(max(0, 1 - (time.monotonic() - started)))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    server.stop()
    print(f"slow: probe successes under 520 slow bodies: {ok}/30")


async def sessions(binary):
    server = Server(binary, {"MCP_SESSIONS": "true", "SESSION_TTL": "5s"})
    await server.ready()
    before = rss_mb(server.proc.pid)
    statuses = {}
    for start in range(0, 3000, 100):
        results = await asyncio.gather(*(request(server.port, INIT) for _ in range(100)))
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
    after = rss_mb(server.proc.pid)
    await asyncio.sleep(8)
    later = rss_mb(server.proc.pid)
    server.stop()
    print(f"sessions: 3000 initialize -> {statuses}; RSS {before:.0f} MB before, {after:.0f} MB after, "
          f"{later:.0f} MB 8 s later (SESSION_TTL=5s)")


async def idle(binary):
    server = Server(binary, {"IDLE_TIMEOUT": "10s"})
    await server.ready()
    conns = []
    for _ in range(1000):
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        conns.append((reader, writer))
    for reader, _ in conns:
        await reader.readuntil(b"\r\n\r\n")
    silent = [await asyncio.open_connection(HOST, server.port) for _ in range(1000)]
    await asyncio.sleep(15)

    async def is_open(reader):
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 0.05)
                if not data:
                    return False
        except asyncio.TimeoutError:
            return True
        except OSError:
            return False

    idle_open = sum([await is_open(r) for r, _ in conns])
    silent_open = sum([await is_open(r) for r, _ in silent])
    for _, w in conns + silent:
        w.close()
    server.stop()
    print(f"idle: after 15 s, {idle_open}/1000 idle keep-alive and {silent_open}/1000 silent connections still open")


async def main():
    binary, which = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "all")
    for name, run in [("slow", slow), ("sessions", sessions), ("idle", idle)]:
        if which in (name, "all"):
            await run(binary)


if __name__ == "__main__":
    asyncio.run(main())
