"""ordertrail.projections"""
