-- Where a line's last recount is, found without reading the line's other submissions: the
-- count since it is what the line holds (see record_submissions).
CREATE INDEX count_submissions_recounts ON count_submissions (line_id, submission) WHERE recount;
