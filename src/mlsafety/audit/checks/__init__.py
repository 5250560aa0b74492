"""Audit checks, one file each; every module here is imported when the registry is used."""
