"""ordertrail.adapters"""
