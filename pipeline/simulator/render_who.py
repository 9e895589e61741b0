"""WHO ICTRP portal pages (``Trial2.aspx``) rendered from the simulator's trials.

The markup copies the *structure* of the real portal (see the fixture
``who/html/ChiCTR2100045397.html`` and the seed text of NCT04252118): ASP.NET spans
``DataList3_ctl01_<Name>`` for single fields, and ``DataList<N>`` tables whose items are
``ctl01``, ``ctl02``, ... (countries eight to a row, contacts three to a row, everything
else one per row).  Text is HTML-escaped and line breaks become ``\\n<br>`` as on the
portal.  Registry-specific wording follows what the portal shows for each registry:
NCT records have dd/mm/yyyy registration dates, "January 27, 2020" enrolment dates and
"Recruiting"/"Not recruiting"; ChiCTR records have ISO dates, group-wise target sizes
and a scientific title padded with spaces to 2,000 characters (an nchar column).

Also here: the not-found page (HTTP 200, empty tables), and the pages the portal (or
what stands in front of it) has been seen to return with HTTP 200 instead of a trial:
a bot check, an access-denied page, an ASP.NET "Server Error in '/' Application" page,
and :func:`layout_changed` (the same page with renamed span ids).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date
from html import escape
from typing import Any

REGISTER_NAMES = {
    "ClinicalTrials.gov": "ClinicalTrials.gov", "ChiCTR": "ChiCTR", "ISRCTN": "ISRCTN",
    "CTRI": "CTRI", "IRCT": "IRCT", "DRKS": "German Clinical Trials Register", "ANZCTR": "ANZCTR",
}
PHASE_WORDS = {"EARLY_PHASE1": "Early Phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2",
               "PHASE3": "Phase 3", "PHASE4": "Phase 4", "NA": "N/A"}
CHICTR_PHASE = {"EARLY_PHASE1": "0", "PHASE1": "1", "PHASE2": "2", "PHASE3": "3", "PHASE4": "4", "NA": "N/A"}
DESIGN_WORDS = {
    "RANDOMIZED": "Randomized", "NON_RANDOMIZED": "Non-Randomized", "NA": "N/A",
    "PARALLEL": "Parallel Assignment", "SINGLE_GROUP": "Single Group Assignment",
    "CROSSOVER": "Crossover Assignment", "FACTORIAL": "Factorial Assignment",
    "TREATMENT": "Treatment", "PREVENTION": "Prevention", "SUPPORTIVE_CARE": "Supportive Care",
    "DIAGNOSTIC": "Diagnostic", "NONE": "None (Open Label)", "SINGLE": "Single", "DOUBLE": "Double",
    "TRIPLE": "Triple", "QUADRUPLE": "Quadruple", "PARTICIPANT": "Participant",
    "CARE_PROVIDER": "Care Provider", "INVESTIGATOR": "Investigator", "OUTCOMES_ASSESSOR": "Outcomes Assessor",
    "COHORT": "Cohort", "CASE_CONTROL": "Case-Control", "CASE_ONLY": "Case-Only",
    "PROSPECTIVE": "Prospective", "RETROSPECTIVE": "Retrospective", "CROSS_SECTIONAL": "Cross-Sectional",
}


def who_status(registry: str, status: str) -> str:
    """A CT.gov status code as the portal words it for ``registry``."""
    recruiting = status in ("RECRUITING", "ENROLLING_BY_INVITATION")
    if registry == "ClinicalTrials.gov":
        return "Recruiting" if recruiting else "Not recruiting"
    return "Recruiting" if recruiting else "Not Recruiting"


def _dmy(iso: str) -> str:
    y, m, d = iso[:4], iso[5:7], iso[8:10] or "01"
    return f"{d}/{m}/{y}"


def _long_date(iso: str) -> str:
    if len(iso) == 7:
        return date(int(iso[:4]), int(iso[5:7]), 1).strftime("%B %Y")
    d = date.fromisoformat(iso)
    return f"{d.strftime('%B')} {d.day}, {d.year}"


def _numbered(text: str) -> str:
    items = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    items = [ln[2:] if ln.startswith("* ") else ln.split(". ", 1)[1] if ln[:1].isdigit() and ". " in ln[:5] else ln
             for ln in items]
    return "\n".join(f"{i}. {item};" for i, item in enumerate(items, 1))


def _portal_day(d: date) -> str:
    return f"{d.day} {d.strftime('%B %Y')}"


def _id_number(trial_id: str) -> int:
    digits = re.sub(r"\D", "", trial_id)
    return int(digits[-6:] or 0)


def _source_url(registry: str, tid: str) -> str:
    n = _id_number(tid)
    return {
        "ClinicalTrials.gov": f"https://clinicaltrials.gov/show/{tid}",
        "ChiCTR": f"http://www.chictr.org.cn/showproj.aspx?proj={120000 + n}",
        "ISRCTN": f"https://www.isrctn.com/{tid}",
        "CTRI": f"http://www.ctri.nic.in/Clinicaltrials/pmaindet2.php?trialid={60000 + n}",
        "IRCT": f"https://en.irct.ir/trial/{70000 + n}",
        "DRKS": f"https://drks.de/search/en/trial/{tid}",
        "ANZCTR": f"https://anzctr.org.au/{tid}.aspx",
    }[registry]


def who_view(t: Any, content: dict[str, Any], proto: dict[str, Any], state: dict[str, Any],
             last_refreshed: date) -> dict[str, Any]:
    """Everything the portal shows for a trial, as display strings (also what event
    sources are judged by: a change is visible on WHO when this dict changes)."""
    reg = t.registry
    nct = reg == "ClinicalTrials.gov"
    chictr = reg == "ChiCTR"
    ident = proto["identificationModule"]
    design = proto["designModule"]
    elig = proto["eligibilityModule"]
    outcomes = proto["outcomesModule"]
    arms = proto["armsInterventionsModule"]
    status = state["status"]
    reg_date = state["first_submit"]
    start = state["start"][0]

    def fmt_date(iso: str) -> str:
        if chictr:
            return iso if len(iso) == 10 else f"{iso}-01"
        return _dmy(iso if len(iso) == 10 else f"{iso}-01")

    interventional = design["studyType"] == "INTERVENTIONAL"
    if nct:
        if interventional:
            di = design["designInfo"]
            mi = di["maskingInfo"]
            masking = DESIGN_WORDS[mi["masking"]]
            if mi.get("whoMasked"):
                masking += " (" + ", ".join(DESIGN_WORDS[w] for w in mi["whoMasked"]) + ")"
            study_design = (f"Allocation: {DESIGN_WORDS[di['allocation']]}. Intervention model: "
                            f"{DESIGN_WORDS[di['interventionModel']]}. Primary purpose: "
                            f"{DESIGN_WORDS[di['primaryPurpose']]}. Masking: {masking}.  ")
        else:
            di = design["designInfo"]
            study_design = (f"Observational Model: {DESIGN_WORDS[di['observationalModel']]}, "
                            f"Time Perspective: {DESIGN_WORDS[di['timePerspective']]}  ")
        phase = "/".join(PHASE_WORDS[p] for p in design.get("phases", [])) or "N/A"
        study_type = "Interventional" if interventional else "Observational"
    elif chictr:
        study_design = "Parallel" if len(arms["armGroups"]) > 1 else "Single arm"
        phase = CHICTR_PHASE[design.get("phases", ["NA"])[0]] if interventional else "N/A"
        study_type = "Interventional study" if interventional else "Observational study"
    else:
        study_design = ("Randomised controlled trial" if len(arms["armGroups"]) > 1 else "Single arm study") + \
            (", open (masking not used)" if interventional and design["designInfo"]["maskingInfo"]["masking"] == "NONE" else "")
        phase = "/".join(PHASE_WORDS[p] for p in design.get("phases", [])).replace("N/A", "Not Applicable") or "Not Applicable"
        study_type = "Interventional" if interventional else "Observational"

    count = state["enrollment"][0]
    if chictr:
        labels = [a["label"] for a in arms["armGroups"]] or ["Case series"]
        share = max(1, count // len(labels)) if count else 0
        target = "".join(f"{lab}:{share};" for lab in labels)
    else:
        target = str(count)

    locs = proto["contactsLocationsModule"]["locations"]
    countries: list[str] = []
    for loc in locs:
        if loc["country"] not in countries:
            countries.append(loc["country"])

    contacts = []
    for c in (content["central"] if content["has_central"] else []):
        contacts.append({"type": "Public", "name": c["name"], "address": "", "telephone": c.get("phone", ""),
                         "email": c.get("email", ""), "affiliation": "" if nct else ident["organization"]["fullName"]})
    for o in content["officials"]:
        contacts.append({"type": "Scientific", "name": o["name"], "address": "", "telephone": "",
                         "email": "", "affiliation": o.get("affiliation", "")})

    criteria = elig["eligibilityCriteria"]
    if nct:
        inclusion, exclusion = criteria, ""
    else:
        # Other registries number their criteria ("1. ...;"), one per line.
        head, _, tail = criteria.partition("Exclusion Criteria:")
        inclusion = "Inclusion criteria: " + _numbered(head.replace("Inclusion Criteria:", ""))
        exclusion = "Exclusion criteria: " + _numbered(tail)
    min_age = elig.get("minimumAge", "")
    max_age = elig.get("maximumAge", "")
    if chictr:
        age_min, age_max = min_age.split()[0] if min_age else "", max_age.split()[0] if max_age else ""
        gender = {"ALL": "Both", "FEMALE": "Female", "MALE": "Male"}[elig["sex"]]
    else:
        age_min, age_max = min_age or "N/A", max_age or "N/A"
        gender = {"ALL": "All", "FEMALE": "Female", "MALE": "Male"}[elig["sex"]]

    ivs = arms["interventions"]
    if chictr:
        interventions = ["".join(f"{iv.get('armGroupLabels', ['Group'])[0]}:{iv['name']};" for iv in ivs)]
        primary = ["".join(f"{o['measure']};" for o in outcomes["primaryOutcomes"])]
        secondary = ["".join(f"{o['measure']};" for o in outcomes.get("secondaryOutcomes", []))] \
            if outcomes.get("secondaryOutcomes") else []
    else:
        interventions = [f"{iv['type'].title().replace('_', ' ')}: {iv['name']}" for iv in ivs]
        if nct:
            primary = [f"{o['measure']} [Time Frame: {o['timeFrame']}]" for o in outcomes["primaryOutcomes"]]
            secondary = [f"{o['measure']} [Time Frame: {o['timeFrame']}]" for o in outcomes.get("secondaryOutcomes", [])]
        else:
            primary = [o["measure"] for o in outcomes["primaryOutcomes"]]
            secondary = [o["measure"] for o in outcomes.get("secondaryOutcomes", [])]

    secondary_ids = [ident["orgStudyIdInfo"]["id"]] + [s["id"] for s in ident.get("secondaryIdInfos", [])] if nct else \
        ([ident["orgStudyIdInfo"]["id"]] if not chictr else [])
    sponsor = proto["sponsorCollaboratorsModule"]["leadSponsor"]["name"]
    collaborators = [c["name"] for c in proto["sponsorCollaboratorsModule"].get("collaborators", [])]
    if nct:
        funding = ["Please refer to primary and secondary sponsors"]
        ethics: list[dict[str, str]] = []
    else:
        funding = ["Self-raised"] if chictr and t.index % 2 else [sponsor]
        ethics = [{"status": "Approved", "date": _dmy(reg_date), "name": content["officials"][0]["name"],
                   "address": f"{content['locations'][0]['city']}, {content['locations'][0]['country']}",
                   "telephone": "", "email": ""}]

    results: dict[str, str] = {k: "" for k in ("available", "url", "date_posted", "date_completed",
                                                "ipd_plan", "ipd_description")}
    if nct:
        has_results = bool(state.get("results_post")) and t.static["tier"] != "normal"
        if has_results:
            results.update(available="Yes", url=f"https://clinicaltrials.gov/ct2/show/results/{t.trial_id}",
                           date_posted=_dmy(state["results_post"]),
                           date_completed=_dmy(state["completion"][0] if len(state["completion"][0]) == 10
                                               else state["completion"][0] + "-01"))
        ipd = proto["ipdSharingStatementModule"]
        results["ipd_plan"] = {"YES": "Yes", "NO": "No", "UNDECIDED": "Undecided"}[ipd["ipdSharing"]]
        results["ipd_description"] = ipd.get("description", "")

    sci = ident["officialTitle"]
    return {
        "trial_id": t.trial_id,
        "elements": "22" if nct else "24",
        "register": REGISTER_NAMES[reg],
        "last_refreshed": _portal_day(last_refreshed),
        "date_registration": fmt_date(reg_date),
        "prospective": "Yes" if reg_date <= (start if len(start) == 10 else start + "-31") else "No",
        "primary_sponsor": sponsor,
        "public_title": ident["briefTitle"],
        "acronym": ident.get("acronym", ""),
        "scientific_title": sci.ljust(2000) if chictr else sci,
        "date_enrolment": _long_date(start) if nct else fmt_date(start),
        "target_size": target,
        "recruitment_status": who_status(reg, status),
        "url": _source_url(reg, t.trial_id),
        "study_type": study_type,
        "study_design": study_design,
        "phase": phase,
        "countries": countries,
        "contacts": contacts,
        "inclusion": inclusion,
        "exclusion": exclusion,
        "age_min": age_min,
        "age_max": age_max,
        "gender": gender,
        "conditions": list(proto["conditionsModule"]["conditions"]),
        "interventions": interventions,
        "primary_outcomes": primary,
        "secondary_outcomes": secondary,
        "secondary_ids": secondary_ids,
        "funding": funding,
        "secondary_sponsors": collaborators,
        "ethics": ethics,
        "results": results,
    }


# ------------------------------------------------------------------------------ markup
def _e(value: str | None) -> str:
    """Escape for HTML; line breaks as the portal shows them (``\\n<br>``)."""
    if not value:
        return ""
    return escape(value, quote=True).replace("\r\n", "\n").replace("\n", "\n<br>")


def _ctl(n: int) -> str:
    return f"ctl{n:02d}"


_TABLE_OPEN = ('<table id="{id}" cellspacing="0" cellpadding="3" bordercolor="#CCCCCC" border="0" '
               'bgcolor="White" width="100%" style="left: 80px; top: 1771px;">\n')
_HEADER = ('\t<tr>\n\t\t<td{colspan} bgcolor="#006699"><font face="Arial" color="White" size="3"><b>\n'
           '                                    {title}\n                                </b></font></td>\n\t</tr>')
_CELL_OPEN = '<td valign="top"><font face="Arial" color="#000066" size="3">\n'
_CELL_CLOSE = "\n                                </font></td>"
_FILLER = '<td><font face="Arial" size="3"></font></td>'


def _datalist(list_id: str, title: str, cells: list[str], columns: int = 1) -> str:
    """A DataList table: header row, then ``cells`` ``columns`` to a row (last row padded)."""
    colspan = f' colspan="{columns}"' if columns > 1 else ""
    out = [_TABLE_OPEN.format(id=list_id), _HEADER.format(colspan=colspan, title=title)]
    for i in range(0, len(cells), columns):
        row = cells[i:i + columns]
        tds = "".join(_CELL_OPEN + c + _CELL_CLOSE for c in row)
        if columns > 1:
            tds += _FILLER * (columns - len(row))
        out.append(f"<tr>\n\t\t{tds}\n\t</tr>")
    out.append("\n</table>")
    return "".join(out)


def _row(label: str, inner: str, td_extra: str = "") -> str:
    return (f"""                                        <tr>
                                            <td style="width: 20%; font-weight: bold;">
                                                {label}
                                            </td>
                                            <td{td_extra}>
                                                {inner}</td>
                                        </tr>
""")


def _span(list_id: str, n: int, name: str, value: str, extra: str = "") -> str:
    return f'<span id="{list_id}_{_ctl(n)}_{name}"{extra}>{value}</span>'


def _contact_cell(n: int, c: dict[str, str]) -> str:
    def r(label: str, inner: str, valign: str = "") -> str:
        return (f"""                                        <tr>
                                            <td style="width: 20%; font-weight: bold;"{valign}>
                                                {label}
                                            </td>
                                            <td style="font-weight: normal; width: 80%">
                                                {inner}</td>
                                        </tr>
""")
    s = lambda name, v="": _span("DataList4", n, name, _e(v))  # noqa: E731
    return ('                                    <table style="width: 100%">\n'
            + r("Contact type:", s("Label2000", c["type"]))
            + r("Name:", s("FirstnameLabel", c["name"]) + "&nbsp;" + s("MiddlenameLabel") + "\n&nbsp;\n                                                " + s("LastnameLabel"))
            + r("Address:&nbsp;", s("AddressLabel", c["address"]) + "\n                                                " + s("Label7") + "\n                                                " + s("Label9") + "\n                                                " + s("Label13"), ' valign="top"')
            + r("Telephone:", s("TelephoneLabel", c["telephone"]))
            + r("Email:", s("EmailLabel", c["email"]))
            + r("Affiliation:&nbsp;", s("AffiliationLabel", c["affiliation"]))
            + "                                    </table>")


def _ethics_cell(n: int, e: dict[str, str]) -> str:
    rows = "".join(f"""                                        <tr>
                                            <td style="width: 20%; font-weight: bold;">{label}</td>
                                            <td style="font-weight: normal; width: 80%">
                                                {_span("DataList5", n, f"Label{2001 + i}", _e(e[key]))}
                                            </td>
                                        </tr>
""" for i, (label, key) in enumerate((("Status:", "status"), ("Approval date:", "date"), ("Contact name:", "name"),
                                       ("Contact address:", "address"), ("Contact telephone:", "telephone"),
                                       ("Contact email:", "email"))))
    return f'                                       <table style="width: 50%">\n{rows}                                       </table>\n'


def _results_cell(r: dict[str, str]) -> str:
    def row(label: str, inner: str) -> str:
        return (f"""                                        <tr>
                                            <td style="width: 20%; font-weight: bold;">{label}</td>
                                            <td>{inner}</td>
                                        </tr>
""")
    s = lambda name, v="": _span("DataListResults", 1, name, _e(v))  # noqa: E731
    url = r.get("url", "")
    link = (f'<a id="DataListResults_ctl01_HyperLink12" href="{_e(url)}" target="_blank">{_e(url)}</a>' if url
            else '<a id="DataListResults_ctl01_HyperLink12" target="_blank"></a>')
    return ('                                    <table style="width: 100%;">\n'
            + row("Results available:", s("lblResultsYesNo", r.get("available")))
            + row("URL:", link + "\n                                            ")
            + row("URL of the protocol:", '<a id="DataListResults_ctl01_HyperLink1" target="_blank"></a>\n                                            ')
            + row("Date Posted:", s("lblResultsDatePosted", r.get("date_posted")))
            + row("Date of completion:", s("lblResultDateCompleted", r.get("date_completed")))
            + row("Date of first publication:", s("Label2"))
            + row("Results summary:", s("Label3"))
            + row("Baseline characteristics:", s("Label5"))
            + row("Adverse events:", s("Label6"))
            + row("Outcome measures:", s("Label10"))
            + row("IPD sharing plan:", s("Label14", r.get("ipd_plan")))
            + row("IPD sharing description:", s("Label15", r.get("ipd_description")))
            + "\n                                    </table>")


def _viewstate(seed: str, n: int) -> str:
    raw = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(n))
    return base64.b64encode(raw).decode()


def _page_head(trial_id: str) -> str:
    q = escape(trial_id, quote=True)
    return f"""<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">

<html xmlns="http://www.w3.org/1999/xhtml" >
<head><title>
	ICTRP Search Portal
</title><link href="StyleSheet.css" rel="stylesheet" type="text/css" /></head>
<body>
<form name="form1" method="post" action="./Trial2.aspx?TrialID={q}" id="form1">
<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="{_viewstate(trial_id, 24)}" />


<script language='Javascript'> 
function onload() {{
}}

</Script>

<input type="hidden" name="__VIEWSTATEGENERATOR" id="__VIEWSTATEGENERATOR" value="0FED3764" />
<input type="hidden" name="__VIEWSTATEENCRYPTED" id="__VIEWSTATEENCRYPTED" value="" />
<input type="hidden" name="__EVENTVALIDATION" id="__EVENTVALIDATION" value="{_viewstate('ev' + trial_id, 3)}" />
  
        <table style="width: 100%;" align="center" bgcolor="#6BA2CC" >
           <tr>
                <td align="center" >
<table bgcolor="#6BA2CC" border="0" cellspacing="0" cellpadding="0">
<tr>
<td valign="top"><a href="http://www.who.int/en/" target="_new"><img src="who_logo_en2.gif" alt="World Health Organization site" border="0"></a></td>
</tr>
</table>
                </td>
            </tr>
          </table>            
        
         <table align="center" style="color: #6ba2cc">
          <tr>
              <td style="height: 21px" align="center">
                  <img alt="" src="ICTRP_logo4.jpg" style="height: 62px" /></td> 
          </tr>  
            </table>
       
   <table bgcolor="gainsboro" bordercolor="gainsboro" style="width: 100%" cellspacing="0" class="nounderline">
             <tr >
                <td >
                    <a href="#Menu1_SkipLink"><img alt="Skip Navigation Links" src="/WebResource.axd?d=menu&amp;t=638901526200000000" width="0" height="0" border="0" /></a><table id="Menu1" cellpadding="0" cellspacing="0" border="0" bgcolor="Gainsboro" width="70%">
	<tr>
		<td id="Menu1n0"><a href="Default.aspx"><font face="Arial" color="#284E98" size="3">Home</font></a></td><td width="3"></td><td id="Menu1n1"><a href="AdvSearch.aspx"><font face="Arial" color="#284E98" size="3">Advanced Search</font></a></td><td width="3"></td><td id="Menu1n6"><a href="Contact.aspx"><font face="Arial" color="#284E98" size="3">Contact us</font></a></td>
	</tr>
</table><a id="Menu1_SkipLink"></a>
                    </td>
            </tr>
            </table>
           
                <table style="width: 100%">
                    <tr style="width: 100%">
                        <td  style="width: 100%">

                            <br />
                           
                            <table id="DataList3" cellspacing="0" cellpadding="3" bordercolor="#CCCCCC" border="0" bgcolor="White" height="150" width="100%" style="left: 26px; top: 258px;">
	<tr>
		<td bgcolor="#006699"><font face="Arial" color="White" size="3"><b>
                                    <span>Main</span>
                                </b></font></td>
	</tr>"""


_PAGE_FOOT = """
                        </td>
                    </tr>
                </table>
      
        
            <table align=center width="100%"   >
                <tr>
                    <td style="border-top: #6ba2cc thick solid"  >
                        <span id="Label18" style="display:inline-block;"><b><font face="Arial" size="2">Disclaimer: Trials posted on this search portal are not endorsed by WHO, but are provided as a service to our users. In no event shall the World Health Organization be liable for any damages arising from the use of the information linked to in this section. None of the information obtained through use of the search portal should in any way be used in clinical care without consulting a physician or licensed health professional. WHO is not responsible for the accuracy, completeness and/or use made of the content displayed for any trial record.</font></b></span></td>
                </tr>
                <tr>
                
                        <td align="center">
                            <a id="HyperLink8" href="http://www.who.int/about/copyright/en/" target="_blank" style="text-align: center"><b><font face="Arial" size="2">Copyright - World Health Organization</font></b></a>
                            <span id="Label17"><b><font face="Arial" size="2">- Version 3.6 -</font></b></span>
                            <a id="HyperLink3" href="ICTRP_Revisions_document.pdf" target="_blank" style="text-align: center"><b><font face="Arial" size="2">Version history</font></b></a>

                        </td>
            
               </tr></table>  

<script type="text/javascript">
//<![CDATA[
var Menu1_Data = new Object();
Menu1_Data.disappearAfter = 500;
//]]>
</script>
</form></body></html>
"""

_EMPTY_LISTS = (("DataList2", "<span>Countries of recruitment</span>", 8),
                ("DataList4", "<span>Contacts</span>", 3),
                ("DataList6", "<span>Key inclusion &amp; exclusion criteria</span>", 1),
                ("DataList8", "<span>Health Condition(s)</span> or Problem(s) studied", 1),
                ("DataList10", "<span>Intervention(s)</span>", 1),
                ("DataList12", "<span>Primary Outcome(s)</span>", 1),
                ("DataList14", "<span>Secondary Outcome(s)</span>", 1),
                ("DataList16", "<span>Secondary ID(s)</span>", 1),
                ("DataList18", "<span>Source(s) of Monetary Support</span>", 1),
                ("DataList20", "<span>Secondary Sponsor(s)</span>", 1),
                ("DataList5", "<span>Ethics review</span>", 1),
                ("DataListResults", "<span>Results</span>", 1))


def _main_cell(v: dict[str, Any]) -> str:
    s = lambda name, value, extra="": _span("DataList3", 1, name, _e(value), extra)  # noqa: E731
    url = _e(v["url"])
    rows = (
        _row("Register:", s("DescriptionLabel", v["register"]))
        + _row("Last refreshed on:", s("Last_updatedLabel", v["last_refreshed"]))
        + _row("Main ID:&nbsp;", s("TrialIDLabel", v["trial_id"]))
        + _row("Date of registration:", s("Date_registrationLabel", v["date_registration"]), ' style="height: 34px"')
        + _row("Prospective Registration:", s("Label1", v["prospective"]))
        + _row("Primary sponsor:", s("Primary_sponsorLabel", v["primary_sponsor"]))
        + _row("Public title:", s("Public_titleLabel", v["public_title"]) + "\n                                                " + s("AcronymLabel", v["acronym"]))
        + _row("Scientific title:", s("Scientific_titleLabel", v["scientific_title"]))
        + _row("Date of first enrolment:", s("Date_enrollementLabel", v["date_enrolment"]))
        + _row("Target sample size:", s("Target_sizeLabel", v["target_size"]), ' width="100%"')
        + _row("Recruitment status:", s("Recruitment_statusLabel", v["recruitment_status"], ' style="display:inline-block;"'), ' style="width: 100px; "')
        + _row("URL:&nbsp;", f'<a id="DataList3_ctl01_HyperLink12" href="{url}" target="_blank">{url}</a>')
        + _row("Study type:&nbsp;", s("Study_typeLabel", v["study_type"]))
        + _row("Study design:&nbsp;", s("Study_designLabel", v["study_design"]) + "\n                                                "
               + s("AllocationLabel", "") + "&nbsp;\n                                                " + s("AssignementLabel", ""))
        + _row("Phase:&nbsp;", s("PhaseLabel", v["phase"]) + "\n                                                 ")
    )
    return (f"""<tr>
		<td><font face="Arial" color="#000066" size="3">
<table style="width: 100%;">
                                        <tr>
                                            <td>
                                                <span id="DataList3_ctl01_Label4" style="font-size: 8pt; font-family: Arial"><i><font color="Navy" size="1">Note: This record shows only {v['elements']} elements of the WHO Trial Registration Data Set. To view changes that have been made to the source record, or for additional information about this trial, click on the URL below to go to the source record in the primary register.  </font></i></span></td>
                                        </tr>
                                    </table>
                                    <table style="width: 100%;">
{rows}                                    </table>
                                </font></td>
	</tr>
</table>""")


def trial_page(v: dict[str, Any]) -> bytes:
    """The full Trial2.aspx page of a :func:`who_view` dict (UTF-8 bytes)."""
    parts = [_page_head(v["trial_id"]), "\n", _main_cell(v), "\n                            \n                            "]
    cells = {
        "DataList2": [_span("DataList2", i, "Country_Label", _e(c)) for i, c in enumerate(v["countries"], 1)],
        "DataList4": [_contact_cell(i, c) for i, c in enumerate(v["contacts"], 1)],
        "DataList6": [
            _span("DataList6", 1, "Inclusion_criteriaLabel", _e(v["inclusion"])) + "<br />\n                                    "
            + _span("DataList6", 1, "Exclusion_criteriaLabel", _e(v["exclusion"])) + "<br />\n                                    <br />\n"
            "                                    Age minimum:\n                                    " + _span("DataList6", 1, "Label8", _e(v["age_min"]))
            + "<br />\n                                    Age maximum:\n                                    " + _span("DataList6", 1, "Label11", _e(v["age_max"]))
            + "<br />\n                                    Gender:\n                                    " + _span("DataList6", 1, "Label12", _e(v["gender"]))],
        "DataList8": [_span("DataList8", i, "Condition_FreeTextLabel", _e(c)) for i, c in enumerate(v["conditions"], 1)],
        "DataList10": [_span("DataList10", i, "Intervention_FreeTextLabel", _e(c)) for i, c in enumerate(v["interventions"], 1)],
        "DataList12": [_span("DataList12", i, "Outcome_NameLabel", _e(c)) + "\n                                    "
                       + _span("DataList12", i, "Time_Frame1Label", "") for i, c in enumerate(v["primary_outcomes"], 1)],
        "DataList14": [_span("DataList14", i, "Outcome_NameLabel", _e(c)) + "\n                                    "
                       + _span("DataList14", i, "Time_Frame2Label", "") for i, c in enumerate(v["secondary_outcomes"], 1)],
        "DataList16": [_span("DataList16", i, "SecondaryIDLabel", _e(c)) for i, c in enumerate(v["secondary_ids"], 1)],
        "DataList18": [_span("DataList18", i, "Source_NameLabel", _e(c)) for i, c in enumerate(v["funding"], 1)],
        "DataList20": [_span("DataList20", i, "Secondary_SponsorLabel", _e(c)) for i, c in enumerate(v["secondary_sponsors"], 1)],
        "DataList5": [_ethics_cell(i, e) for i, e in enumerate(v["ethics"], 1)],
        "DataListResults": [_results_cell(v["results"])],
    }
    for list_id, title, columns in _EMPTY_LISTS:
        parts.append(_datalist(list_id, title, cells[list_id], columns))
        parts.append("\n                            " + ("\n                            " if list_id == "DataList6" else ""))
    parts.append(_PAGE_FOOT)
    return "".join(parts).encode("utf-8")


def not_found_page(trial_id: str) -> bytes:
    """What the portal returns (HTTP 200) for an unknown TrialID: the Main header and every
    DataList table present but empty."""
    parts = [_page_head(trial_id), "\n</table>\n                            \n                            "]
    for list_id, title, columns in _EMPTY_LISTS:
        parts.append(_datalist(list_id, title, [], columns))
        parts.append("\n                            ")
    parts.append(_PAGE_FOOT)
    return "".join(parts).encode("utf-8")


_ID_RE = re.compile(r'id="(DataList\w+?)_ctl(\d+)_(\w+)"')


def layout_changed(page: bytes) -> bytes:
    """The same page after a (simulated) portal redesign: every DataList span id renamed
    (``DataList3_ctl01_Public_titleLabel`` -> ``ctl00_MainContent_rpt3_lblPublic_title_0``)."""
    def rename(m: re.Match[str]) -> str:
        list_no = m.group(1).replace("DataList", "") or "X"
        name = m.group(3).replace("Label", "")
        return f'id="ctl00_MainContent_rpt{list_no}_lbl{name}_{int(m.group(2)) - 1}"'
    text = page.decode("utf-8", "replace")
    text = _ID_RE.sub(rename, text)
    text = text.replace('id="DataList', 'id="ctl00_MainContent_rpt')
    return text.encode("utf-8")


_SPAN_TEXT_RE = re.compile(r'(<span id="DataList\d+_ctl\d+_(\w+)"[^>]*>)(.*?)(</span>)', re.S)
_KEEP_DEFAULT = ("TrialIDLabel", "Public_titleLabel", "Scientific_titleLabel", "Recruitment_statusLabel")


def fields_emptied(page: bytes, keep: list[str] | tuple[str, ...] | None = None) -> bytes:
    """The same page after a redesign that the old markup still half-matches: the ids are
    there but most fields come back empty (only the ``keep`` span names keep their text)."""
    names = tuple(keep) if keep else _KEEP_DEFAULT

    def blank(m: re.Match[str]) -> str:
        return m.group(0) if m.group(2) in names else m.group(1) + m.group(4)

    return _SPAN_TEXT_RE.sub(blank, page.decode("utf-8", "replace")).encode("utf-8")


def bot_check_page() -> bytes:
    """A browser-check interstitial served with HTTP 200 instead of the trial."""
    return b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta name="robots" content="noindex,nofollow">
<meta http-equiv="refresh" content="360"></head><body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">trialsearch.who.int</h1><h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div id="challenge-error-title"><div class="h2"><span class="icon-wrapper"></span>Enable JavaScript and cookies to continue</div></div></noscript>
<div id="challenge-body-text" class="core-msg spacer">trialsearch.who.int needs to review the security of your connection before proceeding.</div>
<form id="challenge-form" action="/Trial2.aspx?__cf_chl_f_tk=Qm90Q2hlY2s" method="POST" enctype="application/x-www-form-urlencoded">
<input type="hidden" name="md" value="c2ltdWxhdGVk"></form></div></div>
<div class="footer" role="contentinfo"><div class="footer-inner"><div class="clearfix diagnostic-wrapper"><div class="ray-id">Ray ID: <code>7d1e2f3a4b5c6d7e</code></div></div>
<div class="text-center" id="footer-text">Performance &amp; security by a web application firewall</div></div></div></body></html>
"""


def access_denied_page() -> bytes:
    """An edge-server access-denied page (seen with HTTP 200 from portals behind a CDN)."""
    return b"""<HTML><HEAD>
<TITLE>Access Denied</TITLE>
</HEAD><BODY>
<H1>Access Denied</H1>
 
You don't have permission to access "http&#58;&#47;&#47;trialsearch&#46;who&#46;int&#47;Trial2&#46;aspx&#63;" on this server.<P>
Reference&#32;&#35;18&#46;6f2e1c17&#46;1736071200&#46;2a9b3c4d
<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net&#47;18&#46;6f2e1c17&#46;1736071200&#46;2a9b3c4d</P>
</BODY>
</HTML>
"""


def server_error_page(message: str = "Object reference not set to an instance of an object.") -> bytes:
    """The ASP.NET yellow error page ("Server Error in '/' Application.")."""
    m = escape(message)
    return f"""<!DOCTYPE html>
<html>
    <head>
        <title>{m}</title>
        <meta name="viewport" content="width=device-width" />
        <style>
         body {{font-family:"Verdana";font-weight:normal;font-size: .7em;color:black;}}
         H1 {{ font-family:"Verdana";font-weight:normal;font-size:18pt;color:red }}
         H2 {{ font-family:"Verdana";font-weight:normal;font-size:14pt;color:maroon }}
        </style>
    </head>

    <body bgcolor="white">

            <span><H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>

            <h2> <i>{m}</i> </h2></span>

            <font face="Arial, Helvetica, Geneva, SunSans-Regular, sans-serif ">

            <b> Description: </b>An unhandled exception occurred during the execution of the current web request. Please review the stack trace for more information about the error and where it originated in the code.

            <br><br>

            <b> Exception Details: </b>System.NullReferenceException: {m}<br><br>

            <b>Source Error:</b> <br><br>

            <table width=100% bgcolor="#ffffcc">
               <tr>
                  <td>
                      <code>An unhandled exception was generated during the execution of the current web request.</code>
                  </td>
               </tr>
            </table>

            <br>

            <hr width=100% size=1 color=silver>

            <b>Version Information:</b>&nbsp;Microsoft .NET Framework Version:4.0.30319; ASP.NET Version:4.8.4667.0

            </font>

    </body>
</html>
""".encode("utf-8")
