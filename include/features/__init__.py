"""PySpark feature jobs. A job is `build(activity: DataFrame, ds: str) -> DataFrame`.

`activity` holds the validated rows of every day in the look-back window with a `ds` column
(YYYY-MM-DD string) added; the job returns one row per entity for the day `ds`.
"""
