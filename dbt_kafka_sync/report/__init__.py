"""What a run leaves behind for people and CI: the results file and the HTML report."""
