"""Published reference numbers for the production-function tests (where each one comes from).

prodest vignette, Table 2
    Rovigatti, G. (2017), "Production Function Estimation in R: The prodest Package",
    vignette of R package prodest 0.1.1 (file ``prodest/inst/doc/prodest_vignette_0.1.1.pdf``
    in github.com/GabrieleRovigatti/prodest), Table 2 "ACF and LP - Monte Carlo Simulations":
    a replication of Ackerberg, Caves and Frazer (2015, Econometrica), Table I. 1,000
    replications of N = 1,000 firms x T = 10 (``panelSim``), true (b_l, b_k) = (0.6, 0.4).
    Columns: ACF mean b_l, sd, mean b_k, sd, LP mean b_l, sd, mean b_k, sd; rows keyed by
    (DGP, share of var(m) that is measurement error). prodest's LP uses a degree-2 first stage
    (k, m, k*m, k^2, m^2) and Olley-Pakes' NLS second stage; its ACF a BFGS search from the
    first-stage coefficients.

GNRProdEst.jl
    Trunschke, M., GNRProdEst.jl (MIT licence), ``test/runtests.jl`` at commit da6eb16
    ("Update tests") on ``test/GNR_data_500.csv`` (the Gandhi-Navarro-Rivers replication
    sample, committed here trimmed as ``gnr_data_500.csv.gz``), called as
    ``GNRProdEst.gnrprodest(data=rep_data, output=:yg, flexible_input=:i, fixed_inputs=:k,
    ln_share_flex_y=:si, id=:id, time=:time, boot_reps=10, opts=opts)`` with the default degrees
    (share polynomial 3, C polynomial 3, law of motion 3). Their test file states the first
    stage to 5 decimals; their second-stage alpha comes from a Nelder-Mead search that, as
    the file's own comment says, "stops before solving the moment conditions".
"""

# (dgp, measurement error share): (acf_bl, acf_bl_sd, acf_bk, acf_bk_sd, lp_bl, lp_bl_sd, lp_bk, lp_bk_sd)
PRODEST_TABLE2: dict[tuple[int, float], tuple[float, ...]] = {
    (1, 0.0): (0.599, 0.009, 0.401, 0.015, -0.004, 0.005, 1.099, 0.030),
    (1, 0.1): (0.600, 0.011, 0.425, 0.016, 0.679, 0.009, 0.365, 0.012),
    (1, 0.2): (0.621, 0.012, 0.406, 0.015, 0.790, 0.007, 0.242, 0.010),
    (1, 0.5): (0.668, 0.015, 0.357, 0.017, 0.876, 0.005, 0.195, 0.160),
    (2, 0.0): (0.606, 0.054, 0.395, 0.054, 0.600, 0.003, 0.401, 0.013),
    (2, 0.1): (0.610, 0.030, 0.406, 0.033, 0.755, 0.004, 0.257, 0.009),
    (2, 0.2): (0.617, 0.021, 0.404, 0.024, 0.809, 0.004, 0.205, 0.010),
    (2, 0.5): (0.633, 0.019, 0.389, 0.022, 0.864, 0.003, 0.446, 0.238),
    (3, 0.0): (0.593, 0.005, 0.409, 0.014, 0.473, 0.003, 0.576, 0.017),
    (3, 0.1): (0.602, 0.037, 0.425, 0.041, 0.635, 0.005, 0.417, 0.012),
    (3, 0.2): (0.610, 0.042, 0.424, 0.041, 0.702, 0.005, 0.348, 0.012),
    (3, 0.5): (0.621, 0.023, 0.415, 0.027, 0.778, 0.005, 1.320, 0.191),
}

# GNRProdEst.jl test/runtests.jl (commit da6eb16): first stage on GNR_data_500
GNR_E = 1.03604299  # E = mean(exp(eps)); their test: 1.035 < E < 1.037, reference 1.03604299 (rtol 1e-6)
# gamma (share polynomial divided by E), 5 decimals; their order follows a Julia Set, so the test
# compares the sorted vectors
GNR_GAMMA = (0.65239, -0.00112, 0.00476, -0.00146, 0.00111, -5.0e-5, -0.0005, 0.00123, -0.00033, -0.02119)
GNR_GAMMA_CONST = 0.65239
# second stage as published (alpha on k, k^2, k^3 with omega = Ycal - P alpha; delta = law of motion
# const, omega, omega^2, omega^3): their Nelder-Mead stopping point, not a root of the moments
GNR_ALPHA_PUBLISHED = (0.3875, -0.0247, 0.00246)
GNR_DELTA_PUBLISHED = (0.1682, 0.769, 0.0656, -0.03985)
# true elasticities of the simulated data (columns kelas_true, ielas_true of GNR_data_500.csv)
GNR_TRUE_ELASTICITY = {"k": 0.25, "i": 0.65}
