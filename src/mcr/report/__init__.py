"""The report: tables and figures built from result files on disk (never from MLflow)."""

from mcr.report.build import ReportConfig, ReportPaths, build_report

__all__ = ["ReportConfig", "ReportPaths", "build_report"]
