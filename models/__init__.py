"""The ORM models of every table, one module per domain.

Importing this package registers every table on ``Base.metadata`` (what
Alembic compares against). Columns that have a default are NOT NULL: the
default exists because a value always makes sense.
"""

from models.agents import AgentMetric, AgentState, AgentTask, AIAgent
from models.analytics import EducationalAnalytics, ErrorLog, SystemHealthCheck, UsageAnalytics
from models.base import Base
from models.collaboration import (
    CollaborationChange,
    CollaborationParticipant,
    CollaborationSession,
    WebSocketConnection,
)
from models.content import ContentObjective, EducationalContent, LearningObjective
from models.lms import (
    LMSAssignment,
    LMSCourse,
    LMSEnrollment,
    LMSGradePassback,
    LMSIntegration,
    LMSUserLink,
)
from models.quizzes import Quiz, QuizAttempt, QuizOption, QuizQuestion
from models.roblox import (
    RobloxGameSession,
    RobloxPlayerSession,
    RobloxPlugin,
    RobloxScript,
    RobloxTerrain,
)
from models.scheduling import PeriodicJobRun
from models.users import User, UserProgress, UserSession

__all__ = [
    "AIAgent",
    "AgentMetric",
    "AgentState",
    "AgentTask",
    "Base",
    "CollaborationChange",
    "CollaborationParticipant",
    "CollaborationSession",
    "ContentObjective",
    "EducationalAnalytics",
    "EducationalContent",
    "ErrorLog",
    "LMSAssignment",
    "LMSCourse",
    "LMSEnrollment",
    "LMSGradePassback",
    "LMSIntegration",
    "LMSUserLink",
    "LearningObjective",
    "PeriodicJobRun",
    "Quiz",
    "QuizAttempt",
    "QuizOption",
    "QuizQuestion",
    "RobloxGameSession",
    "RobloxPlayerSession",
    "RobloxPlugin",
    "RobloxScript",
    "RobloxTerrain",
    "SystemHealthCheck",
    "UsageAnalytics",
    "User",
    "UserProgress",
    "UserSession",
    "WebSocketConnection",
]
