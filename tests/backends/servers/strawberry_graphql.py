"""GraphQL subscriptions with Strawberry (ASGI, under uvicorn), as its docs write them.

``subscription { count(upTo: 3) }`` yields 0, 1, 2 then completes; the
graphql-transport-ws subprotocol is Strawberry's default.

    python -m tests.backends.servers.strawberry_graphql --port 8001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncGenerator

import strawberry
import uvicorn
from strawberry.asgi import GraphQL


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, up_to: int = 3) -> AsyncGenerator[int, None]:
        for i in range(up_to):
            yield i


schema = strawberry.Schema(query=Query, subscription=Subscription)
app = GraphQL(schema)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")


if __name__ == "__main__":
    main()
