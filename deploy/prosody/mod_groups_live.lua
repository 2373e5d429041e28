-- mod_groups_live: Prosody's mod_groups, plus live roster updates on reload.
--
-- Part of ldapsync (see docs/live-updates.md). A drop-in replacement for
-- mod_groups: it reads the same `groups_file` option with the same rules and
-- adds the same contacts to a roster when Prosody loads it. In addition, when
-- the module is reloaded (`prosodyctl shell module reload groups_live HOST`),
-- it brings the rosters of users who are online up to date and tells their
-- clients with roster pushes (RFC 6121 2.1.6), with presence to match, and
-- drops the rosters Prosody cached for users who are offline, so that their
-- next login reads the new groups.
--
-- Enable it instead of "groups" (never both) in modules_enabled.

local datamanager = require "util.datamanager";
local jid_prep = require "util.jid".prep;
local st = require "util.stanza";
local rostermanager = require "core.rostermanager";

local module_host = module:get_host();
local bare_sessions = prosody.bare_sessions;

-- groups[name][jid] = the name that group gives the contact;
-- members[jid] = the groups of jid, in the order of its member lines;
-- members[false] = the public groups, in the order of their headers.
local groups, members;

-- The rules of mod_groups' own file reading (see docs/prosody.md, rules 1-12).
local function read_groups_file(path)
	local new_groups = { default = {} };
	local new_members = {};
	local current = "default";
	for line in io.lines(path) do
		if line:match("^%s*%[.-%]%s*$") then
			current = line:match("^%s*%[(.-)%]%s*$");
			if current:match("^%+") then
				current = current:gsub("^%+", "");
				new_members[false] = new_members[false] or {};
				table.insert(new_members[false], current);
			end
			new_groups[current] = new_groups[current] or {};
		else
			local token, name = line:match("([^=]*)=?(.*)");
			local jid = jid_prep(token:match("%S+"));
			if jid then
				new_groups[current][jid] = name or false;
				new_members[jid] = new_members[jid] or {};
				table.insert(new_members[jid], current);
			elseif token:match("%S") then
				module:log("warn", "Invalid JID: %q", token);
			end
		end
	end
	return new_groups, new_members;
end

-- Adds what the shared groups give bare_jid to roster, as mod_groups does at
-- roster load: own groups in member-line order, then every public group.
-- Returns whether the user gets anything from the groups at all.
local function inject(roster, bare_jid, from_groups, from_members)
	if not from_members[bare_jid] and not from_members[false] then return false; end
	local function import(group_name)
		for jid, name in pairs(from_groups[group_name]) do
			if jid ~= bare_jid then
				local item = roster[jid];
				if not item then item = {}; roster[jid] = item; end
				item.subscription = "both";
				if name then item.name = name; end
				item.groups = item.groups or {};
				item.groups[group_name] = true;
				item.persist = false;
			end
		end
	end
	for _, group_name in ipairs(from_members[bare_jid] or {}) do import(group_name); end
	for _, group_name in ipairs(from_members[false] or {}) do import(group_name); end
	return true;
end

local function on_roster_load(event)
	if inject(event.roster, event.username.."@"..event.host, groups, members) and event.roster[false] then
		event.roster[false].version = true; -- shared contacts make roster versions meaningless
	end
end

-- Shared contacts are never written to the user's personal roster.
local function strip_shared_contacts(username, host, datastore, data)
	if host == module_host and datastore == "roster" then
		local personal = {};
		for jid, item in pairs(data) do
			if item.persist ~= false then personal[jid] = item; end
		end
		if personal[false] then personal[false].version = nil; end
		return username, host, datastore, personal;
	end
	return username, host, datastore, data;
end

-- Live updates ---------------------------------------------------------------

local function copy_item(item)
	if not item then return nil; end
	local copy = {};
	for k, v in pairs(item) do copy[k] = v; end
	copy.groups = {};
	for group in pairs(item.groups or {}) do copy.groups[group] = true; end
	return copy;
end

local function same_groups(a, b)
	for group in pairs(a) do if not b[group] then return false; end end
	for group in pairs(b) do if not a[group] then return false; end end
	return true;
end

local function same_item(a, b)
	if a == nil or b == nil then return a == b; end
	return a.subscription == b.subscription and a.name == b.name and a.ask == b.ask
		and same_groups(a.groups or {}, b.groups or {});
end

-- What the shared groups alone give a user: jid -> item.
local function contributions(bare_jid, from_groups, from_members)
	local roster = {};
	if from_groups then inject(roster, bare_jid, from_groups, from_members); end
	return roster;
end

local function same_contributions(a, b)
	for jid, item in pairs(a) do if not same_item(item, b[jid]) then return false; end end
	for jid in pairs(b) do if a[jid] == nil then return false; end end
	return true;
end

local function receives_presence(item) -- the user sees the contact's presence
	return item ~= nil and (item.subscription == "both" or item.subscription == "to");
end

local function sends_presence(item) -- the contact sees the user's presence
	return item ~= nil and (item.subscription == "both" or item.subscription == "from");
end

local function is_local(bare_jid)
	local _, host = bare_jid:match("^([^@/]*)@([^/]*)$");
	return host ~= nil and prosody.hosts[host] ~= nil and prosody.hosts[host].type == "local";
end

-- Presence that changes hands because rosters changed, sent once per pair.
local function new_presence_courier()
	local sent = {};
	local courier = {};

	-- Through Prosody's routing, as any presence: mod_presence hands it to the
	-- recipient's available sessions, and modules such as mod_blocklist see it.
	local function deliver(stanza)
		module:send(stanza);
	end

	function courier.available(from_bare, to_bare)
		local key = "a "..from_bare.." "..to_bare;
		if sent[key] then return; end
		sent[key] = true;
		if is_local(from_bare) then
			local sender = bare_sessions[from_bare];
			if not sender then return; end -- offline: nothing to see
			for _, session in pairs(sender.sessions) do
				if session.presence then
					local presence = st.clone(session.presence);
					presence.attr.from, presence.attr.to = session.full_jid, to_bare;
					deliver(presence);
				end
			end
		else -- a remote contact answers a probe with its presence
			module:send(st.presence({ type = "probe", from = to_bare, to = from_bare }));
		end
	end

	function courier.unavailable(from_bare, to_bare)
		local key = "u "..from_bare.." "..to_bare;
		if sent[key] then return; end
		sent[key] = true;
		local sender = bare_sessions[from_bare];
		if sender then
			for _, session in pairs(sender.sessions) do
				if session.presence then
					deliver(st.presence({ type = "unavailable", from = session.full_jid, to = to_bare }));
				end
			end
		elseif not is_local(from_bare) then
			deliver(st.presence({ type = "unavailable", from = from_bare, to = to_bare }));
		end
	end

	return courier;
end

-- Brings one online user's roster up to date. Only items the shared groups
-- contributed before or contribute now are touched; each is rebuilt from the
-- user's personal roster in storage plus the new groups, so it is what a fresh
-- login would give. Returns the changes as { jid = { old = ..., new = ... } }.
local function update_roster(username, roster, old_contributions, personal_store)
	local bare_jid = username.."@"..module_host;
	local affected = {};
	for jid in pairs(old_contributions) do affected[jid] = true; end
	for jid, item in pairs(roster) do
		if jid and item.persist == false then affected[jid] = true; end
	end
	local new_contributions = contributions(bare_jid, groups, members);
	for jid in pairs(new_contributions) do affected[jid] = true; end
	if next(affected) == nil then return {}; end

	local personal = personal_store:get(username) or {};
	local fresh = {};
	for jid in pairs(affected) do
		if jid ~= bare_jid then fresh[jid] = copy_item(personal[jid]); end
	end
	local shared = inject(fresh, bare_jid, groups, members);

	local changes = {};
	for jid in pairs(affected) do
		if jid ~= bare_jid and not same_item(roster[jid], fresh[jid]) then
			changes[jid] = { old = roster[jid], new = fresh[jid] };
			roster[jid] = fresh[jid];
		end
	end
	if shared and roster[false] then roster[false].version = true; end
	return changes;
end

local function live_update(old_groups, old_members)
	local personal_store = module:open_store("roster");
	local courier = new_presence_courier();
	local users, pushes = 0, 0;
	local presence_changes = {};

	local host_session = prosody.hosts[module_host];
	for username, user in pairs(host_session and host_session.sessions or {}) do
		local bare_jid = username.."@"..module_host;
		if user.roster then
			local old_contributions = contributions(bare_jid, old_groups, old_members);
			local new_contributions = contributions(bare_jid, groups, members);
			if not old_groups or not same_contributions(old_contributions, new_contributions) then
				local ok, changes = pcall(update_roster, username, user.roster, old_contributions, personal_store);
				if not ok then
					module:log("error", "Could not update the roster of %s: %s", bare_jid, changes);
				elseif next(changes) then
					users = users + 1;
					for jid, change in pairs(changes) do
						-- a name Prosody cannot put in XML fails this push only
						local pushed, err = pcall(rostermanager.roster_push, username, module_host, jid);
						if pushed then
							pushes = pushes + 1;
						else
							module:log("error", "Could not push %s to %s: %s", jid, bare_jid, err);
						end
						table.insert(presence_changes, { user = bare_jid, contact = jid, old = change.old, new = change.new });
					end
				end
			end
		end
	end

	-- Presence after every roster is up to date, so that each side's roster
	-- already says what the other may see.
	for _, change in ipairs(presence_changes) do
		local user, contact = change.user, change.contact;
		if receives_presence(change.new) and not receives_presence(change.old) then
			courier.available(contact, user);
		elseif receives_presence(change.old) and not receives_presence(change.new) then
			courier.unavailable(contact, user);
		end
		if sends_presence(change.new) and not sends_presence(change.old) then
			courier.available(user, contact);
		elseif sends_presence(change.old) and not sends_presence(change.new) then
			courier.unavailable(user, contact);
		end
	end

	-- Rosters Prosody keeps for offline users were built from the old groups.
	local dropped = 0;
	if host_session and host_session.roster_cache then
		dropped = host_session.roster_cache:count();
		host_session.roster_cache:clear();
	end
	module:log("info", "Live update: %d online users' rosters changed (%d roster pushes), %d cached rosters dropped",
		users, pushes, dropped);
end

function module.load()
	local groups_file = module:get_option_path("groups_file", nil, "config");
	if not groups_file then return; end

	module:hook("roster-load", on_roster_load);
	datamanager.add_callback(strip_shared_contacts);

	groups, members = read_groups_file(groups_file);
	module:log("info", "Groups loaded successfully");
	if not module.reloading then
		-- First load, maybe replacing mod_groups on a running server: online
		-- rosters may hold contacts from elsewhere, so compare every one.
		live_update(nil, nil);
	end
end

function module.save()
	return { groups = groups, members = members };
end

function module.restore(saved)
	if groups then live_update(saved.groups, saved.members); end
end

function module.unload()
	datamanager.remove_callback(strip_shared_contacts);
end

-- Public for other modules to access, as in mod_groups.
function group_contains(group_name, jid) -- luacheck: ignore 131
	return groups[group_name][jid];
end
