"""What the report stages share: papermill + nbconvert rendering, and the text helpers
the experiments' analyses use."""
