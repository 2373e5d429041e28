-- Ask the installed Prosody's own code what it does, for differential tests.
-- Reads commands from stdin, one per line, arguments hex-encoded so that any
-- byte (newline, NUL, invalid UTF-8) can pass; answers prefix hex strings
-- with "x" so that an empty string is still a word:
--   prep JID                 -> util.jid.prep(JID) hex-encoded, "-" when rejected
--   roster FILE USER HOST [MODULE]
--                            -> loads plugins/mod_groups.lua itself on FILE and
--                               prints the roster it injects for USER@HOST, one
--                               "item JID NAME|- SUBSCRIPTION GROUP,GROUP" line
--                               per contact, then "end"; MODULE (a path, hex)
--                               loads that module file instead (mod_groups_live)
local prosody_lib = os.getenv("PROSODY_LIB") or "/usr/lib/prosody"
package.path = prosody_lib .. "/?.lua;" .. package.path
package.cpath = prosody_lib .. "/?.so;" .. package.cpath
local jid = require "util.jid"

local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

-- Just enough of Prosody's module API (and, for mod_groups_live, of a server
-- with nobody online) for a groups module to load and hook.
package.loaded["core.rostermanager"] = { roster_push = function() end }
local function load_mod_groups(groups_file, module_file)
  local hooks = {}
  local module = {}
  function module:get_host() return "oracle.invalid" end
  function module:get_option_path(name) if name == "groups_file" then return groups_file end end
  function module:hook(name, fn) hooks[name] = fn end
  function module:log() end
  function module:open_store() return { get = function() return nil end } end
  function module:send() end
  local server = { bare_sessions = {}, hosts = { ["oracle.invalid"] = { type = "local", sessions = {} } } }
  local env = setmetatable({ module = module, prosody = server }, { __index = _G })
  local chunk = assert(loadfile(module_file or (prosody_lib .. "/modules/mod_groups.lua"), "t", env))
  chunk()
  module.load()
  return hooks
end

for line in io.lines() do
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local cmd = words[1]
  if cmd == "prep" then
    local out = jid.prep(unhex(words[2] or ""))
    io.write(out and hex(out) or "-", "\n")
  elseif cmd == "roster" then
    local hooks = load_mod_groups(unhex(words[2]), words[5] and unhex(words[5]))
    local roster = { [false] = { version = 1 } }
    hooks["roster-load"]({ username = unhex(words[3]), host = unhex(words[4]), roster = roster })
    local jids = {}
    for k in pairs(roster) do if k then jids[#jids + 1] = k end end
    table.sort(jids)
    for _, contact in ipairs(jids) do
      local item = roster[contact]
      local groups = {}
      for g in pairs(item.groups or {}) do groups[#groups + 1] = "x" .. hex(g) end
      table.sort(groups)
      io.write("item x", hex(contact), " ", item.name and "x" .. hex(item.name) or "-", " ",
        item.subscription, " ", #groups > 0 and table.concat(groups, ",") or "-", "\n")
    end
    io.write("end\n")
  else
    io.write("?\n")
  end
  io.flush()
end
