"""Monitoring: identify hazards -- OOD detection, backdoors and calibration."""
