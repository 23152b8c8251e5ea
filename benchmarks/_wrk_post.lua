-- wrk script: POST a different benchmark body (32 random floats, one of 1,024 users) each request,
-- as overhead.py does in-process: repeated content would be summarised more cheaply than real traffic.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(7)

request = function()
  local xs = {}
  for i = 1, 32 do xs[i] = string.format("%.6f", (math.random() - 0.5) * 4) end
  local body = '{"x": [' .. table.concat(xs, ", ") .. '], "user": "u' .. math.random(0, 1023) .. '"}'
  return wrk.format(nil, nil, nil, body)
end
