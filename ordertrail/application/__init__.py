"""ordertrail.application"""
