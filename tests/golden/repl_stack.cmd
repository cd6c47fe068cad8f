ttrun
