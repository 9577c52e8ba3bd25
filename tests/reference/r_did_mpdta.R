# Reference numbers on mpdta used by tests/test_att_gt.py, test_event_study.py, test_sunab.py and
# test_imputation.py (see tests/reference/r_did_mpdta.md for where each is printed).
#
#   Rscript tests/reference/r_did_mpdta.R
#
# R 4.x with did 2.5.1 and didimputation (CRAN). mpdta is did's data(mpdta), identical to
# moderndid.load_mpdta() (the tests read the latter).
library(did)
library(didimputation)
data(mpdta)
options(digits = 7)

# ATT(g,t), no covariates, never-treated controls, doubly robust (R did's defaults);
# analytic standard errors: bstrap = FALSE, cband = FALSE
nocov <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
                data = mpdta, bstrap = FALSE, cband = FALSE)
print(data.frame(group = nocov$group, t = nocov$t, att = nocov$att, se = nocov$se))

# with the covariate lpop; and with not-yet-treated controls
lpop <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
               xformla = ~lpop, data = mpdta, bstrap = FALSE, cband = FALSE)
print(data.frame(group = lpop$group, t = lpop$t, att = lpop$att))
notyet <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
                 xformla = ~lpop, control_group = "notyettreated", data = mpdta, bstrap = FALSE, cband = FALSE)
print(data.frame(group = notyet$group, t = notyet$t, att = notyet$att))

# aggregations of the no-covariate model
for (type in c("simple", "dynamic", "group", "calendar")) {
  agg <- aggte(nocov, type = type, bstrap = FALSE, cband = FALSE)
  cat("\n==", type, ": overall", format(agg$overall.att, digits = 7), "\n")
  if (type != "simple") print(data.frame(e = agg$egt, att = agg$att.egt))
}

# Borusyak-Jaravel-Spiess static ATT, clustered by county
print(did_imputation(data = mpdta, yname = "lemp", gname = "first.treat", tname = "year", idname = "countyreal"))
