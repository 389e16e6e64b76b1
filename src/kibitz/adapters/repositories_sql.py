"""Every repository of `kibitz.ports.store.Store` on one SQL store (SQLite or PostgreSQL)."""

from __future__ import annotations

from kibitz.adapters.repo_analyses import SqlAnalyses
from kibitz.adapters.repo_games import SqlGames, SqlPlayers, SqlSyncs
from kibitz.adapters.repo_live import SqlCommentaries, SqlTracking
from kibitz.adapters.repo_matches import SqlMatches
from kibitz.adapters.repo_problems import SqlProblems
from kibitz.adapters.repo_robots import SqlRobots
from kibitz.adapters.repo_training import SqlTraining
from kibitz.adapters.store_sql import SqlStore


class SqlRepositories:
    def __init__(self, store: SqlStore) -> None:
        self.players = SqlPlayers(store)
        self.games = SqlGames(store)
        self.syncs = SqlSyncs(store)
        self.analyses = SqlAnalyses(store)
        self.problems = SqlProblems(store)
        self.matches = SqlMatches(store)
        self.robots = SqlRobots(store)
        self.tracking = SqlTracking(store)
        self.commentaries = SqlCommentaries(store)
        self.training = SqlTraining(store)
