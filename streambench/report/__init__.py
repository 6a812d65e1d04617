"""streambench.report"""
